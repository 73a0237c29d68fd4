"""Client adapters that take their tokens from the vault: httpx, requests, Google.

Each attaches the connection's current access token and, on a 401, forces one refresh
through the vault (single-flight, like every refresh) and retries once.
"""
