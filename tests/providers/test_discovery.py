"""OpenID Connect discovery against the real local provider and a tiny misbehaving server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from oauthvault import ConfigError, ProviderError
from oauthvault.providers import discover, discover_async, load_provider_configs
from oauthvault.providers.discovery import discovery_url, spec_from_response

from tests.helpers.net import free_port


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


class StaticServer:
    """Serves one configurable answer to every GET, on 127.0.0.1, from a thread."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"{}"
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path)
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def serve(self, document: object, status: int = 200) -> None:
        self.status = status
        self.body = document if isinstance(document, bytes) else json.dumps(document).encode()


@pytest.fixture(scope="module")
def static() -> Iterator[StaticServer]:
    server = StaticServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
    thread.join(timeout=10)


def metadata(issuer: str, **overrides: object) -> dict[str, object]:
    document: dict[str, object] = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{issuer}/token",
    }
    document.update(overrides)
    return {key: value for key, value in document.items() if value is not None}


def test_discovery_reads_the_local_provider(op, client):
    spec = discover(op.issuer, client, name="corp")
    assert spec.name == "corp"
    assert spec.issuer == op.issuer
    assert spec.authorization_endpoint == f"{op.issuer}/auth"
    assert spec.token_endpoint == f"{op.issuer}/token"
    assert spec.userinfo_endpoint == f"{op.issuer}/me"
    assert spec.revocation_endpoint == f"{op.issuer}/token/revocation"
    assert spec.revocation_method == "rfc7009"
    assert spec.pkce is True
    assert spec.token_endpoint_auth_method == "client_secret_basic"
    assert spec.default_scopes == ("openid", "offline_access")
    assert spec.refresh_tokens == "rotating"


@pytest.mark.asyncio
async def test_async_discovery_gives_the_same_spec(op, client):
    async with httpx.AsyncClient(timeout=10) as http:
        spec = await discover_async(op.issuer, http, name="corp")
    assert spec == discover(op.issuer, client, name="corp")


def test_configured_issuer_resolves_through_discovery(op, client, tmp_path):
    path = tmp_path / "oauthvault.toml"
    path.write_text(
        f'[providers.corp]\nissuer = "{op.issuer}"\nclient_id = "test-client"\n'
        'client_secret = "test-secret"\n'
    )
    corp = load_provider_configs(path, {})["corp"]
    assert corp.spec is None and corp.issuer is not None
    resolved = corp.resolved(discover(corp.issuer, client, name=corp.name))
    assert resolved.spec is not None
    assert resolved.spec.token_endpoint == f"{op.issuer}/token"
    assert resolved.requested_scopes == ("openid", "offline_access")


def test_issuer_with_a_trailing_slash_does_not_match(op, client):
    # Same document URL (the slash is dropped before the well-known path), other issuer.
    assert discovery_url(op.issuer + "/") == discovery_url(op.issuer)
    with pytest.raises(ConfigError) as caught:
        discover(op.issuer + "/", client, name="corp")
    assert caught.value.setting == "providers.corp.issuer"
    assert "does not exactly match" in caught.value.problem


def test_a_document_for_another_issuer_is_refused(static, client):
    static.serve(metadata("https://login.evil.example"))
    with pytest.raises(ConfigError) as caught:
        discover(static.url, client, name="corp")
    assert caught.value.setting == "providers.corp.issuer"
    assert static.paths[-1] == "/.well-known/openid-configuration"


def test_issuer_with_a_path_fetches_below_it(static, client):
    issuer = f"{static.url}/realms/acme"
    static.serve(metadata(issuer, token_endpoint_auth_methods_supported=["client_secret_post"]))
    spec = discover(issuer, client)
    assert static.paths[-1] == "/realms/acme/.well-known/openid-configuration"
    assert spec.name == "127.0.0.1"
    assert spec.token_endpoint_auth_method == "client_secret_post"
    assert spec.pkce is False
    assert spec.default_scopes == ("openid",)
    assert spec.revocation_endpoint is None and spec.revocation_method is None


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (503, b'{"error": "down"}', "temporarily_unavailable"),
        (404, b"not found", "invalid_discovery_document"),
        (200, b"<html>", "invalid_discovery_document"),
        (200, b"[]", "invalid_discovery_document"),
    ],
)
def test_unusable_answers_are_provider_errors(static, client, status, body, error):
    static.serve(body, status)
    with pytest.raises(ProviderError) as caught:
        discover(static.url, client)
    assert caught.value.error == error


@pytest.mark.parametrize(
    "overrides",
    [
        {"token_endpoint": None},
        {"authorization_endpoint": "ftp://127.0.0.1/auth"},
        {"token_endpoint_auth_methods_supported": ["private_key_jwt"]},
        {"code_challenge_methods_supported": "S256"},
    ],
)
def test_malformed_metadata_is_a_provider_error(static, client, overrides):
    static.serve(metadata(static.url, **overrides))
    with pytest.raises(ProviderError) as caught:
        discover(static.url, client)
    assert caught.value.error == "invalid_discovery_document"


def test_no_refresh_grant_means_no_refresh_tokens(static, client):
    static.serve(metadata(static.url, grant_types_supported=["authorization_code"]))
    assert discover(static.url, client).refresh_tokens == "none"


def test_a_remote_issuer_cannot_point_at_plain_http_endpoints():
    issuer = "https://login.example.com"
    document = metadata(issuer, token_endpoint="http://127.0.0.1:9/token")
    response = httpx.Response(200, json=document)
    with pytest.raises(ProviderError) as caught:
        spec_from_response(issuer, response, name="corp")
    assert "token_endpoint" in str(caught.value.error_description)
    ok = spec_from_response(issuer, httpx.Response(200, json=metadata(issuer)), name="corp")
    assert ok.token_endpoint == "https://login.example.com/token"


def test_unreachable_provider_is_temporarily_unavailable(client):
    port = free_port()  # a port nobody listens on
    with pytest.raises(ProviderError) as caught:
        discover(f"http://127.0.0.1:{port}", client)
    assert caught.value.error == "temporarily_unavailable"


@pytest.mark.parametrize(
    "issuer", ["http://login.example.com", "login.example.com", "https://a.example/?x=1", ""]
)
def test_malformed_issuers_are_config_errors(client, issuer):
    with pytest.raises(ConfigError) as caught:
        discover(issuer, client, name="corp")
    assert caught.value.setting == "providers.corp.issuer"
