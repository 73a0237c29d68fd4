"""The admin console at ``/admin``: server-rendered pages over the vault's connections.

Signed-in operators search connections across workspaces, look at one (never a token), and
refresh it, make a reconnect link, or revoke and delete it. Every state-changing request is
a POST carrying the session's CSRF token; the session cookie is ``HttpOnly``,
``SameSite=Strict``, ``Secure`` behind https, and ends after ``[admin] session_ttl``.

:mod:`.router` maps the routes to plain handlers (:mod:`.signin`, :mod:`.browse`,
:mod:`.actions`), each given the :class:`~.console.AdminConsole`; :mod:`.rows` is how a
connection is shown.
"""

from oauthvault.service.admin.console import SESSION_COOKIE
from oauthvault.service.admin.router import create_admin_router

__all__ = ["SESSION_COOKIE", "create_admin_router"]
