"""Code the test modules share: clocks, ports, servers, clients and harnesses; no tests here.

- ``clock``: :class:`Clock`, the settable clock passed as the vaults' ``clock=``.
- ``net``: :func:`free_port`.
- ``redis_server``: :class:`RedisServer`, a private redis-server a test may stop or freeze.
- ``oidc_server``: :class:`OIDCServer`, the local OpenID provider (tests/oidc_provider).
- ``oidc_client``: a bare OAuth client for that provider (``discover``, ``authorize``, ...).
- ``service_harness``: the oauthvault service in a thread, and a connect-flow walker.
- ``refresh_worker``: the target of the processes in the cross-process refresh race.
- ``sync_facade``: :class:`SyncFacade`, an ``AsyncOAuthTokenCache`` driven synchronously.
"""
