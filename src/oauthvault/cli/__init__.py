"""``oauthvault`` command line: a thin layer over the library.

Every command reads the same settings as the library (``DATABASE_URL``, ``REDIS_URL``,
``OAUTH_ENCRYPTION_KEY``). Exit status: 0 done; 1 a check that found problems (``doctor``,
``worker --once``); 2 an error, printed as one ``error:`` line (a missing connection too)
or as click's usage message.

One module per command or group of commands; :mod:`oauthvault.cli.root` holds the
``main`` group and what the commands share.
"""

from oauthvault.cli.audit import audit
from oauthvault.cli.credentials import admin, apikey
from oauthvault.cli.demo import demo
from oauthvault.cli.doctor import doctor
from oauthvault.cli.importing import import_connections
from oauthvault.cli.keys import keygen, rotate_key
from oauthvault.cli.migrate import migrate
from oauthvault.cli.providers import providers
from oauthvault.cli.root import main
from oauthvault.cli.serve import serve
from oauthvault.cli.stored_credentials import credentials
from oauthvault.cli.tokens import tokens
from oauthvault.cli.worker import worker

__all__ = ["main"]

for _command in (
    admin,
    apikey,
    audit,
    credentials,
    demo,
    doctor,
    import_connections,
    keygen,
    migrate,
    providers,
    rotate_key,
    serve,
    tokens,
    worker,
):
    main.add_command(_command)
