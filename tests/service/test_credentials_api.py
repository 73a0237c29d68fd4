"""``PUT``/``GET /v1/credentials`` and ``POST /v1/credentials/verify``: a credential stored
verified (a refused one answered ``400 invalid_credentials``, nothing stored), read back
audited, limited to the API key's workspaces, marked ``needs_reauth`` when the provider
stops taking it, and never shown where it does not belong (listings, errors, logs)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from oauthvault import generate_key
from oauthvault.providers.credentials import load_credential_catalog

from tests.helpers.credential_api import CredentialApiEmulator
from tests.helpers.service_harness import ConnectEnvironment, running_environment

GOOD = "sk-" + "A" * 40
WRONG = "sk-" + "B" * 40
IDS = {"provider": "openai", "workspace_id": "ws_cred", "actor_id": "carol"}


@pytest.fixture(scope="module")
def api() -> Iterator[CredentialApiEmulator]:
    emulator = CredentialApiEmulator(load_credential_catalog()).start()
    emulator.accept("openai", {"api_key": GOOD})
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def service(
    api: CredentialApiEmulator,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    _redis_checked: str,
) -> Iterator[ConnectEnvironment]:
    extra = f'[credentials.openai]\napi_base_url = "{api.base_override("openai")}"\n'
    directory: Path = tmp_path_factory.mktemp("credentials_api")
    with running_environment(
        directory,
        postgres_url,
        _redis_checked,
        generate_key(),
        auto_approve=True,
        extra_config=extra,
    ) as environment:
        yield environment


def test_store_read_verify_and_delete(service, caplog):
    caplog.set_level(logging.DEBUG)
    with service.api() as http:
        http.delete("/v1/connections", params=IDS)
        refused = http.put("/v1/credentials", json={**IDS, "credentials": {"api_key": WRONG}})
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "invalid_credentials"
        assert WRONG not in refused.text
        assert http.get("/v1/credentials", params=IDS).status_code == 404
        stored = http.put("/v1/credentials", json={**IDS, "credentials": {"api_key": GOOD}})
        assert stored.status_code == 201, stored.text
        assert stored.json() == {**IDS, "kind": "api_key", "fields": ["api_key"], "params": {}}
        read = http.get("/v1/credentials", params=IDS)
        assert read.status_code == 200, read.text
        assert read.json()["credentials"] == {"api_key": GOOD}
        listing = http.get("/v1/connections", params={"workspace_id": IDS["workspace_id"]})
        assert listing.status_code == 200 and GOOD not in listing.text
        assert [row["auth"] for row in listing.json()] == ["api_key"]
        token = http.get("/v1/connections/token", params=IDS)
        assert token.status_code == 409 and token.json()["code"] == "wrong_credential_kind"
        assert GOOD not in token.text
        assert http.post("/v1/credentials/verify", json=IDS).json() == {"outcome": "valid"}
        deleted = http.delete("/v1/connections", params=IDS)
        assert deleted.status_code in (200, 204), deleted.text
        assert http.get("/v1/credentials", params=IDS).status_code == 404
    assert GOOD not in caplog.text and WRONG not in caplog.text


def test_bad_fields_and_unknown_providers_are_refused_clearly(service):
    with service.api() as http:
        bad = http.put("/v1/credentials", json={**IDS, "credentials": {"api_key": "nope"}})
        assert bad.status_code == 422 and bad.json()["argument"] == "credentials.api_key"
        assert "nope" not in bad.text
        unknown = http.put(
            "/v1/credentials", json={**IDS, "provider": "nobody", "credentials": {"k": "v"}}
        )
        assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_provider"


def test_a_key_for_other_workspaces_may_not_store_or_read(service):
    with service.api(service.other_workspace_key) as http:
        stored = http.put("/v1/credentials", json={**IDS, "credentials": {"api_key": GOOD}})
        assert stored.status_code == 403
        assert http.get("/v1/credentials", params=IDS).status_code == 403


def test_a_refused_credential_needs_reauth(service, api):
    revocable = "sk-" + "C" * 40
    api.accept("openai", {"api_key": revocable})
    ids = {**IDS, "actor_id": "dora"}
    with service.api() as http:
        assert (
            http.put(
                "/v1/credentials", json={**ids, "credentials": {"api_key": revocable}}
            ).status_code
            == 201
        )
        api.forget("openai")
        try:
            assert http.post("/v1/credentials/verify", json=ids).json() == {"outcome": "refused"}
        finally:
            api.accept("openai", {"api_key": GOOD})
        listing = http.get(
            "/v1/connections", params={"workspace_id": IDS["workspace_id"], "actor_id": "dora"}
        )
        [listed] = listing.json()
        assert listed["status"] == "needs_reauth"
