"""Discovery (OpenID Connect and RFC 8414 metadata) against the real local provider and a
tiny server that publishes what each test needs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from oauthvault import ConfigError, ProviderError
from oauthvault.providers import discover, discover_async, load_provider_configs
from oauthvault.providers.discovery import (
    discovery_url,
    metadata_url,
    metadata_urls,
    spec_from_responses,
)

from tests.helpers.metadata_server import OAUTH, OPENID, MetadataServer
from tests.helpers.net import free_port


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


@pytest.fixture(scope="module")
def static() -> Iterator[MetadataServer]:
    with MetadataServer() as server:
        yield server


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
    assert OPENID in static.paths


def test_issuer_with_a_path_fetches_below_it(static, client):
    issuer = f"{static.url}/realms/acme"
    static.serve(metadata(issuer, token_endpoint_auth_methods_supported=["client_secret_post"]))
    spec = discover(issuer, client)
    assert static.paths[-2:] == [f"/realms/acme{OPENID}", f"{OAUTH}/realms/acme"]
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
    response, missing = httpx.Response(200, json=document), httpx.Response(404)
    with pytest.raises(ProviderError) as caught:
        spec_from_responses(issuer, response, missing, name="corp")
    assert "token_endpoint" in str(caught.value.error_description)
    with pytest.raises(ProviderError):  # the same from the RFC 8414 document
        spec_from_responses(issuer, missing, response, name="corp")
    ok = spec_from_responses(
        issuer, httpx.Response(200, json=metadata(issuer)), missing, name="corp"
    )
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


# --- RFC 8414 authorization-server metadata ---------------------------------------------------


def test_rfc8414_goes_between_the_host_and_the_issuers_path():
    assert metadata_url("https://h.example/tenant") == (
        "https://h.example/.well-known/oauth-authorization-server/tenant"
    )
    assert metadata_url("https://h.example/tenant/") == (
        "https://h.example/.well-known/oauth-authorization-server/tenant"
    )
    assert metadata_url("https://h.example") == (
        "https://h.example/.well-known/oauth-authorization-server"
    )
    assert metadata_urls("https://h.example/t") == (
        "https://h.example/t/.well-known/openid-configuration",
        "https://h.example/.well-known/oauth-authorization-server/t",
    )
    with pytest.raises(ConfigError) as caught:
        metadata_url("http://h.example", name="corp")
    assert caught.value.setting == "providers.corp.issuer"


def serve_like_django_oauth_toolkit(static: MetadataServer, issuer: str) -> None:
    """OpenID metadata without revocation; RFC 8414 metadata with it (and introspection)."""
    static.serve(b"not found", 404)
    static.route(
        OPENID,
        metadata(
            issuer,
            userinfo_endpoint=f"{issuer}/userinfo",
            code_challenge_methods_supported=["plain", "S256"],
            token_endpoint_auth_methods_supported=["client_secret_post", "client_secret_basic"],
        ),
    )
    static.route(
        OAUTH,
        metadata(
            issuer,
            token_endpoint=f"{issuer}/other-token",  # the OpenID document wins
            revocation_endpoint=f"{issuer}/revoke_token",
            introspection_endpoint=f"{issuer}/introspect",
        ),
    )


def test_rfc8414_fills_what_the_openid_document_omits(static, client):
    serve_like_django_oauth_toolkit(static, static.url)
    spec = discover(static.url, client, name="dot")
    assert spec.token_endpoint == f"{static.url}/token"
    assert spec.userinfo_endpoint == f"{static.url}/userinfo"
    assert spec.revocation_endpoint == f"{static.url}/revoke_token"
    assert spec.revocation_method == "rfc7009"
    assert spec.introspection_endpoint == f"{static.url}/introspect"
    assert spec.pkce is True and spec.token_endpoint_auth_method == "client_secret_basic"
    assert static.paths[-2:] == [OPENID, OAUTH]


@pytest.mark.asyncio
async def test_async_discovery_merges_the_same_way(static, client):
    serve_like_django_oauth_toolkit(static, static.url)
    async with httpx.AsyncClient(timeout=10) as http:
        spec = await discover_async(static.url, http, name="dot")
    assert spec == discover(static.url, client, name="dot")
    assert spec.revocation_endpoint == f"{static.url}/revoke_token"


def test_a_server_with_only_rfc8414_metadata(static, client):
    issuer = f"{static.url}/tenant"
    static.serve(b"not found", 404)
    static.route(
        f"{OAUTH}/tenant",
        metadata(issuer, revocation_endpoint=f"{issuer}/revoke", scopes_supported=["read"]),
    )
    spec = discover(issuer, client, name="plain")
    assert spec.issuer == issuer
    assert spec.revocation_endpoint == f"{issuer}/revoke"
    assert spec.revocation_method == "rfc7009"
    assert spec.default_scopes == ()  # not an OpenID provider: no openid scope
    assert static.paths[-2:] == [f"/tenant{OPENID}", f"{OAUTH}/tenant"]


def test_neither_document_is_a_clear_error(static, client):
    static.serve(b"not found", 404)
    with pytest.raises(ProviderError) as caught:
        discover(static.url, client)
    assert caught.value.error == "invalid_discovery_document"
    assert "neither discovery document" in str(caught.value.error_description)
    assert OAUTH in str(caught.value.error_description)


def test_each_document_must_name_the_configured_issuer(static, client):
    static.serve(metadata(static.url))
    static.route(OAUTH, metadata("https://login.evil.example"))
    with pytest.raises(ConfigError) as caught:
        discover(static.url, client, name="corp")
    assert caught.value.setting == "providers.corp.issuer"
    assert "login.evil.example" in caught.value.problem


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (503, b"{}", "temporarily_unavailable"),
        (200, b"<html>", "invalid_discovery_document"),
    ],
)
def test_a_broken_rfc8414_answer_is_not_ignored(static, client, status, body, error):
    static.serve(metadata(static.url))
    static.route(OAUTH, body, status)
    with pytest.raises(ProviderError) as caught:
        discover(static.url, client)
    assert caught.value.error == error


@pytest.mark.parametrize(
    ("revocation_methods", "method", "revocable"),
    [
        (None, "client_secret_basic", True),
        (["client_secret_post"], "client_secret_post", True),
        (["private_key_jwt"], "client_secret_basic", False),
    ],
)
def test_revocation_needs_a_client_authentication_it_takes(
    static, client, revocation_methods, method, revocable
):
    static.serve(b"not found", 404)
    static.route(
        OAUTH,
        metadata(
            static.url,
            revocation_endpoint=f"{static.url}/revoke",
            token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
            revocation_endpoint_auth_methods_supported=revocation_methods,
        ),
    )
    spec = discover(static.url, client)
    assert spec.token_endpoint_auth_method == method
    assert (spec.revocation_endpoint is not None) is revocable
    assert (spec.revocation_method is not None) is revocable
