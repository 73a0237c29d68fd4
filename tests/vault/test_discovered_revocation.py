"""A provider known only by its issuer revokes on delete when discovery finds its revocation
endpoint in RFC 8414 metadata (django-oauth-toolkit publishes it only there) or the table
names one. The metadata is served by a loopback server; the endpoints are the real local
provider's, which counts the revocations it confirms."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from oauthvault import AsyncOAuthTokenCache, DeleteOutcome, OAuthTokenCache
from oauthvault.providers import load_provider_configs

from tests.helpers.metadata_server import OAUTH, OPENID, MetadataServer
from tests.helpers.oidc_server import DEFAULT_CLIENT, OIDCServer

IDS = ("dot", "ws", "user")


@pytest.fixture
def dot(op: OIDCServer) -> Iterator[MetadataServer]:
    """Metadata like django-oauth-toolkit's: the OpenID document without a revocation
    endpoint, the RFC 8414 document with it; both point at the local provider."""
    with MetadataServer() as server:
        openid = {
            "issuer": server.url,
            "authorization_endpoint": f"{op.issuer}/auth",
            "token_endpoint": f"{op.issuer}/token",
            "userinfo_endpoint": f"{op.issuer}/me",
            "code_challenge_methods_supported": ["plain", "S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        }
        server.serve(b"not found", 404)
        server.route(OPENID, openid)
        server.route(
            OAUTH,
            {**openid, "revocation_endpoint": f"{op.issuer}/token/revocation"},
        )
        yield server


def providers_file(tmp_path: Path, issuer: str, *lines: str) -> Path:
    path = tmp_path / "providers.toml"
    path.write_text(
        "\n".join(
            [
                "[providers.dot]",
                f'issuer = "{issuer}"',
                f'client_id = "{DEFAULT_CLIENT["client_id"]}"',
                f'client_secret = "{DEFAULT_CLIENT["client_secret"]}"',
                *lines,
            ]
        )
        + "\n"
    )
    return path


def assert_revoked_at_the_provider(op: OIDCServer, access_token: str) -> None:
    assert op.stats()["revocation_ok"] == 1
    userinfo = httpx.get(f"{op.issuer}/me", headers={"Authorization": f"Bearer {access_token}"})
    assert userinfo.status_code == 401  # the grant is gone at the provider


def test_revocation_found_in_rfc8414_metadata_is_used_on_delete(op, grant, dot, tmp_path, key):
    providers = load_provider_configs(providers_file(tmp_path, dot.url), {})
    with OAuthTokenCache(f"sqlite:///{tmp_path / 'v.db'}", "", key, providers=providers) as vault:
        vault.store_tokens(*IDS, grant[0], grant[1], expires_in=3600)
        assert vault.delete_tokens(*IDS, revoke=True) == DeleteOutcome(deleted=True, revoked=True)
        assert vault.get_tokens(*IDS) is None
    assert {OPENID, OAUTH} <= set(dot.paths)
    assert_revoked_at_the_provider(op, grant[0])


def test_async_delete_revokes_the_same_way(op, grant, dot, tmp_path, key):
    providers = load_provider_configs(providers_file(tmp_path, dot.url), {})

    async def scenario() -> DeleteOutcome:
        url = f"sqlite:///{tmp_path / 'v.db'}"
        async with AsyncOAuthTokenCache(url, "", key, providers=providers) as vault:
            await vault.store_tokens(*IDS, grant[0], grant[1], expires_in=3600)
            return await vault.delete_tokens(*IDS, revoke=True)

    assert asyncio.run(scenario()) == DeleteOutcome(deleted=True, revoked=True)
    assert_revoked_at_the_provider(op, grant[0])


def test_a_revocation_endpoint_in_the_table_is_used_when_discovery_has_none(
    op, grant, dot, tmp_path, key
):
    dot.route(OAUTH, b"not found", 404)  # no revocation endpoint anywhere in the metadata
    path = providers_file(
        tmp_path, dot.url, f'revocation_endpoint = "{op.issuer}/token/revocation"'
    )
    providers = load_provider_configs(path, {})
    with OAuthTokenCache(f"sqlite:///{tmp_path / 'v.db'}", "", key, providers=providers) as vault:
        vault.store_tokens(*IDS, grant[0], grant[1], expires_in=3600)
        assert vault.delete_tokens(*IDS, revoke=True) == DeleteOutcome(deleted=True, revoked=True)
    assert_revoked_at_the_provider(op, grant[0])
