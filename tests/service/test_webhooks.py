"""Signed webhooks from the service when a connection's status changes."""

from __future__ import annotations

import json
import time

import pytest
from fastapi import FastAPI, Request, Response

from oauthvault import generate_key
from oauthvault.service.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, sign, verify

from tests.helpers.net import free_port
from tests.helpers.service_harness import UvicornThread, running_environment

SECRET = "webhook-shared-secret-0123456789"


def test_signatures_verify_and_reject_tampering_and_age():
    body = b'{"type": "connection.refreshed"}'
    header = sign(SECRET, body, 1_700_000_000)
    assert verify(SECRET, body, header, now=1_700_000_100)
    assert not verify(SECRET, body + b" ", header, now=1_700_000_100)
    assert not verify("another-secret-0123456789", body, header, now=1_700_000_100)
    assert not verify(SECRET, body, header, now=1_700_001_000)  # too old
    assert not verify(SECRET, body, "garbage", now=1_700_000_100)


@pytest.fixture
def receiver():
    received = []
    app = FastAPI()

    @app.post("/hooks")
    async def hook(request: Request) -> dict[str, bool]:
        received.append((await request.body(), request.headers.get(SIGNATURE_HEADER, "")))
        return {"ok": True}

    port = free_port()
    server = UvicornThread(app, port)
    server.start()
    yield f"http://127.0.0.1:{port}/hooks", received
    server.stop()


def test_a_needs_reauth_transition_is_posted_signed(tmp_path, postgres_url, pg, receiver):
    url, received = receiver
    with running_environment(
        tmp_path,
        postgres_url,
        None,
        generate_key(),
        auto_approve=True,
        service_settings=f'webhook_url = "{url}"\nwebhook_secret = "{SECRET}"',
    ) as env:
        ids = {"provider": "local", "workspace_id": "ws_hooks", "actor_id": "henry"}
        with env.api() as api:
            api.put(
                "/v1/connections",
                json={
                    **ids,
                    "access_token": "EXPIRED",
                    "refresh_token": "BOGUS-REFRESH",
                    "expires_in": 0,
                },
            )
            answer = api.get("/v1/connections/token", params=ids)
        assert answer.status_code == 409
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:  # the webhook is sent afterwards
            time.sleep(0.05)
    [(body, header)] = received
    assert verify(SECRET, body, header, now=time.time())
    event = json.loads(body)
    assert event["type"] == "connection.status_changed"
    assert event["data"]["status"] == "needs_reauth"
    assert event["data"]["actor_id"] == "henry"
    assert "BOGUS" not in body.decode() and "EXPIRED" not in body.decode()


def test_webhook_url_without_secret_is_a_config_error(tmp_path):
    from oauthvault import ConfigError
    from oauthvault.service.config import load_service_config

    path = tmp_path / "c.toml"
    path.write_text('[service]\nwebhook_url = "https://hooks.example.com/x"\n')
    with pytest.raises(ConfigError) as caught:
        load_service_config(path, {})
    assert caught.value.setting == "OAUTHVAULT_WEBHOOK_SECRET"


def test_retries_of_one_event_carry_its_id_and_two_events_differ(tmp_path, postgres_url, pg):
    """Failed before issue 26: deliveries carried no event id to de-duplicate retries by."""
    seen: list[tuple[str, str]] = []
    app = FastAPI()

    @app.post("/hooks")
    async def hook(request: Request) -> Response:
        body = json.loads(await request.body())
        seen.append((request.headers.get(EVENT_ID_HEADER, ""), body.get("id", "")))
        first = sum(1 for header, _ in seen if header == seen[-1][0]) == 1
        return Response(status_code=500 if first else 200)  # each event: once refused

    port = free_port()
    server = UvicornThread(app, port)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}/hooks"
        with running_environment(
            tmp_path,
            postgres_url,
            None,
            generate_key(),
            auto_approve=True,
            service_settings=f'webhook_url = "{url}"\nwebhook_secret = "{SECRET}"',
        ) as env:
            with env.api() as api:
                for actor in ("ivy", "jack"):
                    ids = {"provider": "local", "workspace_id": "ws_hook_ids", "actor_id": actor}
                    body = {**ids, "access_token": "X", "refresh_token": "BOGUS", "expires_in": 0}
                    api.put("/v1/connections", json=body)
                    assert api.get("/v1/connections/token", params=ids).status_code == 409
            deadline = time.monotonic() + 20
            while len(seen) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        server.stop()
    assert all(header and header == field for header, field in seen), seen
    ids_seen = [header for header, _ in seen]
    assert len(set(ids_seen)) == 2 and all(ids_seen.count(i) == 2 for i in set(ids_seen))
