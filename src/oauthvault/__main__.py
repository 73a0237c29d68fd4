"""``python -m oauthvault`` runs the command line."""

from oauthvault.cli import main

main()
