"""The OAuth router mounted in a host app, with the host's own identity hook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, HTTPException, Request

from oauthvault import AsyncOAuthTokenCache, generate_key
from oauthvault.connect.flow import AsyncConnector
from oauthvault.providers.config import load_provider_configs
from oauthvault.service import Identity, create_oauth_router
from oauthvault.service.returns import ReturnUrlPolicy

from tests.helpers.net import free_port
from tests.helpers.oidc_server import OIDCServer
from tests.helpers.service_harness import CLIENT_ID, CLIENT_SECRET, UvicornThread


def test_a_router_mounted_in_the_host_app_uses_its_identity_hook(tmp_path, postgres_url, pg):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    provider = OIDCServer(
        auto_approve=True,
        clients=[
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"{base}/oauth/local/callback"],
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code", "refresh_token"],
            }
        ],
    ).start()
    config = tmp_path / "providers.toml"
    config.write_text(
        f'[providers.local]\nissuer = "{provider.issuer}"\nclient_id = "{CLIENT_ID}"\n'
        f'client_secret = "{CLIENT_SECRET}"\nscopes = ["openid", "offline_access"]\n'
    )
    vault = AsyncOAuthTokenCache(postgres_url, "", generate_key())
    connector = AsyncConnector(vault, load_provider_configs(config, {}))

    async def current_user(request: Request) -> Identity:
        user = request.cookies.get("session_user")
        if user is None:
            raise HTTPException(401, "log in first")
        return Identity(workspace_id="ws_host", actor_id=user)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await connector.aclose()  # the host app owns the connector and the vault
        await vault.aclose()

    host = FastAPI(lifespan=lifespan)
    host.include_router(
        create_oauth_router(
            connector,
            public_url=base,
            return_urls=ReturnUrlPolicy([f"{base}/settings/"]),
            resolve_identity=current_user,
        )
    )
    server = UvicornThread(host, port)
    server.start()
    try:
        with httpx.Client(timeout=10, cookies={"session_user": "grace"}) as browser:
            response = browser.get(
                f"{base}/oauth/local/connect", params={"return_url": f"{base}/settings/done"}
            )
            for _ in range(20):
                location = str(response.url.join(response.headers["location"]))
                if location.startswith(f"{base}/settings/"):
                    break
                if "code_challenge=" in location:
                    location += "&login_hint=grace"
                response = browser.get(location)
            assert "oauthvault_status=connected" in location
        with httpx.Client(timeout=10) as anonymous:
            assert anonymous.get(f"{base}/oauth/local/connect").status_code == 401
        with httpx.Client(timeout=10, cookies={"session_user": "grace"}) as browser:
            bad = browser.get(
                f"{base}/oauth/local/connect", params={"return_url": "https://evil.example.com/"}
            )
            assert bad.status_code == 400  # a page for the end user, naming the code
            assert bad.headers["content-type"].startswith("text/html")
            assert "not set up correctly" in bad.text and "invalid_return_url" in bad.text
        row = pg.execute(
            "SELECT actor_id FROM oauth_tokens WHERE workspace_id = 'ws_host'"
        ).fetchall()
        assert row == [("grace",)]
    finally:
        server.stop()
        provider.stop()
