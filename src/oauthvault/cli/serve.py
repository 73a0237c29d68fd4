"""``oauthvault serve``: run the HTTP service."""

from __future__ import annotations

import logging
from typing import Any

import click

from oauthvault import __version__
from oauthvault.cli.root import load_settings, plain_errors

__all__ = ["serve", "server_options"]


def server_options(trusted_proxies: tuple[str, ...]) -> dict[str, Any]:
    """uvicorn's options as ``serve`` runs the app: the limit of a request's head, and
    ``X-Forwarded-*`` believed from ``trusted_proxies`` only. uvicorn's own default believes
    them from 127.0.0.1 (or ``$FORWARDED_ALLOW_IPS``), the peer a local client or anything
    else on the host is: it could then pick the address the sign-in throttle and the
    audit trail see."""
    from oauthvault.service.edge import MAX_REQUEST_HEAD

    options: dict[str, Any] = {"h11_max_incomplete_event_size": MAX_REQUEST_HEAD}
    if trusted_proxies:
        options.update(proxy_headers=True, forwarded_allow_ips=list(trusted_proxies))
    else:
        options.update(proxy_headers=False)
    return options


@click.command(short_help="Run the HTTP service.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.pass_context
@plain_errors
def serve(context: click.Context, host: str, port: int) -> None:
    """Run the HTTP service (configured by OAUTHVAULT_CONFIG and the environment)."""
    import uvicorn

    from oauthvault.service import create_app
    from oauthvault.service.config import service_config_from

    settings = load_settings(context)
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - a comparison
    config = service_config_from(settings, default_public_url=f"http://{url_host}:{port}")
    app = create_app(config, settings)
    log = logging.getLogger("oauthvault.serve")
    log.setLevel(logging.INFO)
    log.info(
        "oauthvault %s: database %s, %s, %d provider(s)%s, %d API key(s), public URL %s",
        __version__,
        settings.database_location.description,
        "Redis cache" if settings.redis_url_value else "no Redis (database only)",
        len(config.providers),
        f" ({', '.join(sorted(config.providers))})" if config.providers else "",
        len(config.api_keys),
        config.public_url,
    )
    if not config.api_keys:
        log.warning(
            "no API key is configured: every /v1 call will be refused; create one with "
            "`oauthvault apikey create --name …` and add it to OAUTHVAULT_CONFIG"
        )
    logging.getLogger("oauthvault.access").setLevel(logging.INFO)
    # uvicorn's access log prints query strings (codes, states, link tokens): ours does not.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        **server_options(config.trusted_proxies),
    )
