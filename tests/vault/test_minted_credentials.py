"""Tokens the vault mints from a credential, renewed like refreshes: GitHub App
installation tokens (a real RS256 JWT, verified by the GitHub emulator with the app's
public key), Google service-account tokens (the JWT's claims checked by the Google
emulator) and a two-step sign-in (Tableau). Cached, re-minted before they end, exactly once
across processes, verified on store, and never shown."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from oauthvault import InvalidCredentials, OAuthTokenCache, ReauthorizationRequired
from oauthvault.providers.credential_apps import credential_apps_from

from tests.helpers.app_emulators import GitHubEmulator, GoogleTokenEmulator, TwoStepEmulator
from tests.helpers.clock import Clock
from tests.helpers.refresh_worker import credential_race, run_race

APP_ID = "424242"
INSTALLATION = "38631545"
GH_IDS = ("github-app", "ws-apps", "installer")


def _pem(key: rsa.RSAPrivateKey, form: serialization.PrivateFormat) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, form, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def github(clock: Clock, app_key: rsa.RSAPrivateKey) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(clock=lambda: clock().timestamp()) as emulator:
        emulator.register_app(APP_ID, app_key)
        emulator.install(INSTALLATION, APP_ID)
        yield emulator


def github_config(emulator: GitHubEmulator, key: rsa.RSAPrivateKey) -> dict[str, object]:
    return {
        "github-app": {
            "app_id": APP_ID,
            "app_slug": "acme-sync",
            "private_key": _pem(key, serialization.PrivateFormat.TraditionalOpenSSL),
            "api_base_url": emulator.base_url,
        }
    }


def test_a_github_installation_token_is_minted_cached_and_reminted(
    sqlite_url, key, clock, github, app_key, caplog
):
    apps = credential_apps_from(github_config(github, app_key))
    with OAuthTokenCache(sqlite_url, "", key, clock=clock, credential_apps=apps) as vault:
        stored = vault.store_credentials(*GH_IDS, {}, params={"installation_id": INSTALLATION})
        assert stored.kind == "app" and dict(stored) == {}
        assert github.mints[INSTALLATION] == 1  # minted, then verified with it
        assert github.headers["authorization"].startswith("Bearer ey")  # the app's JWT
        first = vault.get_access_token(*GH_IDS)
        assert first.startswith("ghs_") and github.mints[INSTALLATION] == 1  # cached
        clock.advance(50 * 60)  # ten minutes left of the hour: still fresh enough
        assert vault.get_access_token(*GH_IDS) == first
        clock.advance(9 * 60 + 30)  # half a minute left: re-minted before it ends
        second = vault.get_access_token(*GH_IDS)
        assert second != first and github.mints[INSTALLATION] == 2
        [listed] = vault.list_connections(workspace_id=GH_IDS[1])
        assert listed.params == {"installation_id": INSTALLATION}
        assert listed.status == "active"
        outcome = vault.delete_tokens(*GH_IDS, revoke=True)  # DELETE /installation/token
        assert outcome.deleted and outcome.revoked is True
        assert second not in github.tokens
    assert first not in caplog.text and second not in caplog.text


def test_a_removed_installation_is_refused_and_then_needs_reauth(
    sqlite_url, key, clock, github, app_key
):
    apps = credential_apps_from(github_config(github, app_key))
    with OAuthTokenCache(sqlite_url, "", key, clock=clock, credential_apps=apps) as vault:
        with pytest.raises(InvalidCredentials):  # an installation of no one
            vault.store_credentials(*GH_IDS, {}, params={"installation_id": "999"})
        assert vault.list_connections(workspace_id=GH_IDS[1]) == []
        vault.store_credentials(*GH_IDS, {}, params={"installation_id": INSTALLATION})
        github.uninstall(INSTALLATION)
        clock.advance(3600)
        with pytest.raises(ReauthorizationRequired):
            vault.get_access_token(*GH_IDS)
        [listed] = vault.list_connections(workspace_id=GH_IDS[1])
        assert listed.status == "needs_reauth"


@pytest.mark.slow  # five processes
def test_fifty_callers_in_five_processes_mint_one_installation_token(
    postgres_url, pg, redis_url, key, app_key, tmp_path
):
    with GitHubEmulator() as github:
        github.register_app(APP_ID, app_key)
        github.install(INSTALLATION, APP_ID)
        config = github_config(github, app_key)
        config_file = tmp_path / "apps.json"
        config_file.write_text(json.dumps(config))
        apps = credential_apps_from(config)
        with OAuthTokenCache(postgres_url, redis_url, key, credential_apps=apps) as vault:
            vault.delete_tokens(*GH_IDS)
            # Imported without verification: the first use mints.
            vault.store_credentials(
                *GH_IDS, {}, params={"installation_id": INSTALLATION}, verify=False
            )
        assert github.mints[INSTALLATION] == 0
        args = (postgres_url, redis_url, key, str(config_file), GH_IDS, 10)
        outcomes = run_race(credential_race, args, processes=5)
        tokens = [token for got, _ in outcomes for token in got]
        errors = [error for _, problems in outcomes for error in problems]
        assert errors == []
        assert len(tokens) == 50 and len(set(tokens)) == 1
        assert github.mints[INSTALLATION] == 1


def test_a_service_account_token_carries_the_documented_claims(sqlite_url, key, clock):
    account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = "sync@acme-project.iam.gserviceaccount.com"
    scopes = ["https://www.googleapis.com/auth/drive.readonly"]
    with GoogleTokenEmulator(clock=lambda: clock().timestamp()) as google:
        google.register(email, "kid-1", account_key)
        key_file = json.dumps(
            {
                "type": "service_account",
                "private_key_id": "kid-1",
                "private_key": _pem(account_key, serialization.PrivateFormat.PKCS8),
                "client_email": email,
                "token_uri": google.token_url,
            }
        )
        apps = credential_apps_from(
            {
                "google-service-account": {
                    "scopes": scopes,
                    "token_uri": google.token_url,
                    "api_base_url": google.base_url,
                }
            }
        )
        ids = ("google-service-account", "ws-sa", "admin")
        with OAuthTokenCache(sqlite_url, "", key, clock=clock, credential_apps=apps) as vault:
            stored = vault.store_credentials(
                *ids, {"service_account_json": key_file, "subject": "ceo@acme.example"}
            )
            assert stored.kind == "app"
            token = vault.get_access_token(*ids)
            claims = google.claims or {}
            assert claims["iss"] == email and claims["aud"] == google.token_url
            assert claims["scope"] == " ".join(scopes) and claims["sub"] == "ceo@acme.example"
            assert claims["exp"] - claims["iat"] == 3600
            assert (google.header or {})["kid"] == "kid-1"
            assert google.issued[token] == (email, "ceo@acme.example")
            read = vault.get_credentials(*ids)
            assert "PRIVATE KEY" not in repr(read)


def test_a_two_step_token_is_signed_in_for_once_and_placed(sqlite_url, key, clock):
    with TwoStepEmulator(clock=lambda: clock().timestamp()) as tableau:
        tableau.tableau_pats["sync-pat"] = ("pat-secret-value", "acme")
        base = tableau.loopback("tableau", "https://{server}/api/3.22")
        apps = credential_apps_from(
            {"tableau": {"api_base_url": base, "token_url": f"{base}/auth/signin"}}
        )
        ids = ("tableau", "ws-tab", "analyst")
        fields = {"pat_name": "sync-pat", "pat_secret": "pat-secret-value", "site": "acme"}
        wrong = {**fields, "pat_secret": "not-the-secret"}
        params = {"server": "tableau.acme.example"}
        with OAuthTokenCache(sqlite_url, "", key, clock=clock, credential_apps=apps) as vault:
            with pytest.raises(InvalidCredentials) as refused:
                vault.store_credentials(*ids, wrong, params=params)
            assert "not-the-secret" not in str(refused.value)
            vault.store_credentials(*ids, fields, params=params)
            assert tableau.mints["sync-pat"] == 1
            token = vault.get_access_token(*ids)
            [listed] = vault.list_connections(workspace_id=ids[1])
            assert listed.params["server"] == "tableau.acme.example"
            assert "site_id" in listed.params  # taken from the sign-in answer
            clock.advance(2 * 3600)  # the documented session ended: signed in again
            assert vault.get_access_token(*ids) != token
            assert tableau.mints["sync-pat"] == 2


def test_the_apps_own_service_account_acts_for_a_subject_per_connection(sqlite_url, key, clock):
    """The key file in the app's settings; each connection names only whom it acts for."""
    account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = "app@acme-project.iam.gserviceaccount.com"
    with GoogleTokenEmulator(clock=lambda: clock().timestamp()) as google:
        google.register(email, "kid-app", account_key)
        key_file = json.dumps(
            {
                "type": "service_account",
                "private_key_id": "kid-app",
                "private_key": _pem(account_key, serialization.PrivateFormat.PKCS8),
                "client_email": email,
                "token_uri": google.token_url,
            }
        )
        apps = credential_apps_from(
            {
                "google-service-account": {
                    "scopes": ["https://www.googleapis.com/auth/calendar.readonly"],
                    "token_uri": google.token_url,
                    "service_account_json": key_file,
                    "api_base_url": google.base_url,
                }
            }
        )
        with OAuthTokenCache(sqlite_url, "", key, clock=clock, credential_apps=apps) as vault:
            for user in ("ana@acme.example", "bo@acme.example"):
                ids = ("google-service-account", "ws-dwd", user)
                vault.store_credentials(*ids, {"subject": user})
                token = vault.get_access_token(*ids)
                assert google.issued[token] == (email, user)
            assert google.mints[email] == 2
            assert "PRIVATE KEY" not in repr(apps["google-service-account"])
