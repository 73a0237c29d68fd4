"""``create_app``: the oauthvault HTTP service (``oauthvault serve``).

Routes only translate HTTP to library calls: the vault, the connector and the links do
the work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from oauthvault import __version__
from oauthvault.config import Settings
from oauthvault.connect.flow import HELD_CALLBACK_TTL, AsyncConnector
from oauthvault.errors import ConfigError
from oauthvault.oauth.token_request import install_httpx_log_redaction
from oauthvault.service.access_log import AccessLogMiddleware
from oauthvault.service.admin import create_admin_router
from oauthvault.service.admin_session import AdminSessions
from oauthvault.service.api import create_api_router
from oauthvault.service.apikeys import ApiKeyRing
from oauthvault.service.callback_budget import CallbackBudget
from oauthvault.service.config import ServiceConfig, service_config_from
from oauthvault.service.edge import HttpEdge
from oauthvault.service.github_install import github_apps
from oauthvault.service.links import ConnectLinks
from oauthvault.service.metrics import (
    ConnectionCounts,
    ServiceMetrics,
    VaultCollector,
    serve_metrics,
)
from oauthvault.service.oauth_routes import create_oauth_router
from oauthvault.service.openapi import install_openapi
from oauthvault.service.pages import Pages
from oauthvault.service.problems import install_problem_handlers
from oauthvault.service.proxy import ProxyClients, ProxySettings, create_proxy_router
from oauthvault.service.returns import ReturnUrlPolicy
from oauthvault.service.webhooks import webhook_sender
from oauthvault.storage.admin_sessions import ended_sessions_at
from oauthvault.vault import AsyncOAuthTokenCache

__all__ = ["create_app", "webhook_sender"]


def create_app(config: ServiceConfig | None = None, settings: Settings | None = None) -> FastAPI:
    """The service. ``settings`` (database, Redis, key ring, configuration file) default to
    the environment; ``config`` to the file the settings name.

    Raises:
        ConfigError: a setting is unusable (at creation, not at the first request).
    """
    settings = settings or Settings.load()
    config = config or service_config_from(settings)
    # Every request the service sends (webhooks, discovery, keys) is logged without its query.
    install_httpx_log_redaction()
    webhooks = webhook_sender(config)
    vault = AsyncOAuthTokenCache(
        settings=settings,
        providers=config.providers,
        credential_apps=config.credential_apps,
        on_event=webhooks.schedule if webhooks else None,
        # Every token the service hands out is recorded, named by the API key that asked.
        audit_caller="service" if settings.audit else None,
    )
    connector = AsyncConnector(vault, config.providers, state_ttl=config.state_ttl)
    links = ConnectLinks(vault, ttl=config.link_ttl)
    try:
        return_urls = ReturnUrlPolicy(config.return_urls)
    except ValueError as error:
        raise ConfigError("service.return_urls", str(error)) from None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await vault.open()
        stop_metrics = serve_metrics(config.metrics_port, config.metrics_host, metrics, counts)
        yield
        stop_metrics()
        if webhooks is not None:
            await webhooks.drain()
        await connector.aclose()
        await proxy_clients.aclose()
        await vault.aclose()

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from the package, not a CDN.
    app = FastAPIOffline(
        title="oauthvault",
        version=__version__,
        summary="OAuth connect flows and an encrypted token vault for multi-tenant backends.",
        lifespan=lifespan,
        # Starlette's trailing-slash redirect builds its Location from the Host header.
        redirect_slashes=False,
    )
    collector = VaultCollector(
        vault.cache_info,
        vault.refresh_outcomes,
        lambda: vault.cache_available if vault.backend_mode == "db+cache" else None,
        (lambda: webhooks.deliveries) if webhooks is not None else None,
        audit=lambda: vault.audit_trail,
        key_encryptions=vault.key_encryptions,
        key_encryption_limit=settings.key_encryption_limit,
    )
    metrics = ServiceMetrics(collector)
    counts = ConnectionCounts(collector, vault.count_by_status, config.metrics_refresh)
    app.state.vault = vault
    app.state.connector = connector
    app.state.metrics = metrics
    app.state.api_keys = ApiKeyRing(config.api_keys)
    install_problem_handlers(app)
    install_openapi(app, return_url_pattern=return_urls.pattern())
    app.include_router(
        create_api_router(
            vault,
            links,
            return_urls,
            config.public_url,
            connector.provider_names,
            connector,
            metrics.token_latency,
            installable=github_apps(config.credential_apps),
        )
    )
    proxy_clients = ProxyClients(ProxySettings.of(settings))
    app.include_router(create_proxy_router(vault, proxy_clients, metrics.proxy_latency))
    pages = Pages(config.branding)
    app.include_router(
        create_oauth_router(
            connector,
            public_url=config.public_url,
            return_urls=return_urls,
            links=links,
            pages=pages,
            held_callbacks=CallbackBudget(
                config.held_callbacks_per_address,
                config.held_callbacks_total,
                HELD_CALLBACK_TTL,
            ),
            credential_vault=vault,
            credential_apps=config.credential_apps,
        )
    )
    if config.admin is not None:
        sessions = AdminSessions(
            lambda: vault.keyring, config.admin.credential_sha256, config.admin.session_ttl
        )
        app.include_router(
            create_admin_router(
                vault,
                connector,
                links,
                sessions,
                # In the database, not Redis: shared by every instance, durable (a Redis
                # restarted empty would bring signed-out sessions back), and the console
                # needs the database for every page anyway.
                ended_sessions_at(settings.database_location, settings.db_connect_timeout),
                pages,
                public_url=config.public_url,
            )
        )

    app.add_middleware(HttpEdge)
    app.add_middleware(AccessLogMiddleware)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers (it touches nothing else: see ``/readyz``)."""
        return {"status": "ok"}

    if config.metrics_port is None:  # else on its own port (see serve_metrics)

        @app.get("/metrics", tags=["operations"], response_class=Response)
        async def prometheus_metrics() -> Response:
            """Prometheus metrics (text format). No label carries a token, a workspace or an
            actor id; expose this port to your monitoring only (or set ``metrics_port``)."""
            await counts.refresh()  # at most every metrics_refresh seconds
            return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"description": "not ready: the database is down or not migrated"}},
    )
    async def readyz() -> JSONResponse:
        """Readiness: 200 when the database answers with this version's schema, else 503;
        the body names the state of the database, the cache, the local cache and provider
        discovery."""
        report = await vault.readiness()
        return JSONResponse(report.as_dict(), status_code=200 if report.ready else 503)

    return app
