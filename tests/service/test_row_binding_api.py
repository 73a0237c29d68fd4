"""GET /v1/connections/token never hands out a token whose row was changed by hand: the
values it returns beside the token (expiry, scope, connection parameters) are bound to it."""

from __future__ import annotations

import pytest

IDS = {"provider": "salesforce", "workspace_id": "ws_bound"}

# A [providers.salesforce] table after the [service] lines.
pytestmark = pytest.mark.env_options(
    service_settings='\n[providers.salesforce]\nclient_id = "sf-id"\nclient_secret = "sf-secret"\n'
)

EDITS = {
    "params": """connection_params = '{"instance_url":"https://evil.example.com"}'""",
    "expiry": "expires_at = expires_at + interval '30 days'",
    "scope": "scope = 'api full'",
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_row_changed_by_hand_gives_no_token(env, pg, edit):
    where = {**IDS, "actor_id": f"changed-{edit}"}
    with env.api() as api:
        stored = api.put(
            "/v1/connections",
            json={**where, "access_token": "SF-ACCESS", "expires_in": 600, "scope": "api"},
        )
        assert stored.status_code == 204, stored.text
        assert api.get("/v1/connections/token", params=where).json()["access_token"] == "SF-ACCESS"
        pg.execute(
            f"UPDATE oauth_tokens SET {EDITS[edit]},"  # noqa: S608 - the test's own SQL
            " version = nextval('oauth_tokens_version_seq')"
            " WHERE actor_id = %s",
            (where["actor_id"],),
        )
        for _ in range(200):  # the change is announced; every cached copy is refused
            answer = api.get("/v1/connections/token", params=where)
            if answer.status_code != 200:
                break
        assert answer.status_code == 409, answer.text
        assert answer.json()["code"] == "decryption_error"
        assert "SF-ACCESS" not in answer.text and "evil" not in answer.text
