"""oauthvault benchmarks: every operation next to its bare floor, measured in the same run."""
