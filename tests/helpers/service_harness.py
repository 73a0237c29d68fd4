"""Run the oauthvault service against the local OpenID provider, for flow tests, and walk
its connect flow with a plain HTTP client as a browser."""

from __future__ import annotations

import html
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn

from oauthvault import Settings
from oauthvault.cli.serve import server_options
from oauthvault.service import create_app
from oauthvault.service.apikeys import generate_api_key, hash_api_key
from oauthvault.service.config import load_service_config

from tests.helpers.net import bound_socket
from tests.helpers.oidc_server import OIDCServer

CLIENT_ID = "oauthvault-test"
CLIENT_SECRET = "oauthvault-test-secret"  # a made-up secret for the local provider


class UvicornThread:
    """An ASGI app served by uvicorn on 127.0.0.1 in a background thread, on ``port`` or on
    a socket already bound (:func:`~tests.helpers.net.bound_socket`: no other process of
    the suite can take its port first)."""

    def __init__(
        self, app: Any, port: int | socket.socket, trusted_proxies: tuple[str, ...] = ()
    ) -> None:
        if isinstance(port, socket.socket):
            self.socket = port
        else:
            self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(("127.0.0.1", port))
        port = self.socket.getsockname()[1]
        self.server = uvicorn.Server(
            # As `oauthvault serve` runs it (the limit of a request's head, proxy trust).
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="on",
                **server_options(trusted_proxies),
            )
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:  # polls the server thread until it listens
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


@dataclass
class ConnectEnvironment:
    base_url: str
    api_key: str
    other_workspace_key: str
    return_url: str
    provider: OIDCServer
    config_path: Path

    def api(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {key or self.api_key}"},
            timeout=10,
        )

    def connect_link(self, workspace_id: str, actor_id: str, **overrides: str) -> str:
        body = {
            "provider": "local",
            "workspace_id": workspace_id,
            "actor_id": actor_id,
            "return_url": self.return_url,
            **overrides,
        }
        with self.api() as api:
            response = api.post("/v1/connect-links", json=body)
        response.raise_for_status()
        url: str = response.json()["url"]
        return url


def start_environment(
    tmp: Path,
    database_url: str,
    redis_url: str | None,
    key: str,
    *,
    auto_approve: bool,
    extra_return_urls: Sequence[str] = (),
    service_settings: str = "",
    client_options: Mapping[str, Any] | None = None,
    provider_settings: str = "",
    extra_config: str = "",
) -> tuple[ConnectEnvironment, UvicornThread]:
    """``extra_return_urls`` are allowed return-URL prefixes besides ``{base_url}/app/``;
    ``service_settings`` are extra TOML lines for the ``[service]`` table;
    ``client_options`` override the client's registration at the provider
    (``client_secret``, ``id_token_signed_response_alg``, ...); ``provider_settings``
    replace ``issuer = ...`` in ``[providers.local]`` (``{issuer}`` is filled in);
    ``extra_config`` is appended to the file (``[credentials.*]`` tables)."""
    held = bound_socket()
    port = held.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [f"{base_url}/oauth/local/callback"],
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["authorization_code", "refresh_token"],
        **(client_options or {}),
    }
    provider = OIDCServer(auto_approve=auto_approve, clients=[client]).start()
    provider_table = (provider_settings or 'issuer = "{issuer}"').replace(
        "{issuer}", provider.issuer
    )
    api_key, limited_key = generate_api_key(), generate_api_key()
    return_url = f"http://127.0.0.1:{port}/app/done"
    config_path = tmp / "oauthvault.toml"
    config_path.write_text(f"""
[service]
public_url = "{base_url}"
return_urls = {json.dumps([f"http://127.0.0.1:{port}/app/", *extra_return_urls])}
{service_settings}

[[api_keys]]
name = "backend"
sha256 = "{hash_api_key(api_key)}"

[[api_keys]]
name = "other-workspace-only"
sha256 = "{hash_api_key(limited_key)}"
workspaces = ["ws_other"]

[providers.local]
{provider_table}
client_id = "{CLIENT_ID}"
client_secret = "{client["client_secret"]}"
scopes = ["openid", "email", "offline_access"]
{extra_config}
""")
    # These tests walk connect flows; Redis faults are tested elsewhere. A generous Redis
    # timeout keeps a loaded 2-core machine's pause from sending a flow's one-time records
    # to the database path mid-flow (the default, 0.25 s, is for production's fast degrade).
    settings = Settings.load(
        database_url=database_url,
        redis_url=redis_url or "",
        oauth_encryption_key=key,
        redis_timeout=2.0,
    )
    config = load_service_config(config_path, {})
    app = create_app(config, settings)
    server = UvicornThread(app, held, config.trusted_proxies)
    server.start()
    environment = ConnectEnvironment(
        base_url, api_key, limited_key, return_url, provider, config_path
    )
    return environment, server


@contextmanager
def running_environment(
    tmp: Path, database_url: str, redis_url: str | None, key: str, **options: Any
) -> Iterator[ConnectEnvironment]:
    """:func:`start_environment`, stopping the service and the provider afterwards."""
    environment, server = start_environment(tmp, database_url, redis_url, key, **options)
    try:
        yield environment
    finally:
        server.stop()
        environment.provider.stop()


# --- the connect flow, walked by a plain HTTP client -------------------------------------------


def walk(
    browser: httpx.Client, url: str, stop: Callable[[str], bool], login: str
) -> httpx.Response:
    """Follow redirects (relative ones too) until ``stop(location)``, pressing "Continue"
    on a connect link's confirmation page; the provider's authorization request gets a
    ``login_hint`` so its auto-approval logs ``login`` in."""
    response = browser.get(url)
    for _ in range(20):
        if response.status_code == 200 and 'id="confirm"' in response.text:
            response = press_continue(browser, response)
            continue
        if response.status_code not in (302, 303):
            return response
        location = str(response.url.join(response.headers["location"]))
        if stop(location):
            return response
        if "code_challenge=" in location and "login_hint=" not in location:
            location += f"&login_hint={login}"
        response = browser.get(location)
    raise AssertionError("too many redirects")


def press_continue(browser: httpx.Client, page: httpx.Response) -> httpx.Response:
    """Submit a confirmation page's form (its action and one-time ``link``), as the
    browser does when "Continue" is pressed."""
    action = re.search(r'<form id="confirm" method="post" action="([^"]+)"', page.text)
    link = re.search(r'name="link" value="([^"]+)"', page.text)
    assert action is not None and link is not None, page.text
    return browser.post(html.unescape(action[1]), data={"link": link[1]})


def open_link(browser: httpx.Client, url: str) -> httpx.Response:
    """Open a connect link and press "Continue" on its confirmation page: the answer is
    the redirect to the provider (or the page the link ended on)."""
    page = browser.get(url)
    if page.status_code == 200 and 'id="confirm"' in page.text:
        return press_continue(browser, page)
    return page


def follow_until_callback(browser: httpx.Client, url: str, login: str = "alice") -> httpx.Response:
    """Run the whole flow; the last response is our callback's answer."""
    return walk(browser, url, lambda location: "/app/done" in location, login)


def connect(env: ConnectEnvironment, workspace_id: str, actor_id: str) -> httpx.Response:
    """A whole connect flow for ``actor_id`` in a fresh browser."""
    with httpx.Client(timeout=10) as browser:
        return follow_until_callback(browser, env.connect_link(workspace_id, actor_id))


def outcome(response: httpx.Response) -> dict[str, str]:
    """The ``oauthvault_*`` query of the callback's redirect to the return URL."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("http://127.0.0.1:") and "/app/done?" in location
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
