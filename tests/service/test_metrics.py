"""Prometheus metrics of the service and the worker: the families, their values after real
calls, and that no label or value carries a token, a workspace or an actor id."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from oauthvault import KeyRing, OAuthTokenCache, generate_key

from tests.helpers.net import free_port
from tests.helpers.service_harness import connect, outcome, running_environment

IDS = {"provider": "local", "workspace_id": "ws_metrics_secret", "actor_id": "frank_id"}
TOKEN = "METRICS-ACCESS-SECRET"


def families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_the_service_exposes_reads_latency_connections_and_states(env):
    with env.api() as api:
        stored = api.put("/v1/connections", json={**IDS, "access_token": TOKEN, "expires_in": 600})
        assert stored.status_code == 204
        for _ in range(3):
            assert api.get("/v1/connections/token", params=IDS).status_code == 200
        assert outcome(connect(env, "ws_metrics_flow", "gina"))["oauthvault_status"] == "connected"
        flow = {"provider": "local", "workspace_id": "ws_metrics_flow", "actor_id": "gina"}
        assert api.post("/v1/connections/refresh", json=flow).status_code == 200
        missing = {**IDS, "actor_id": "nobody"}
        assert api.get("/v1/connections/token", params=missing).status_code == 404
        response = httpx.get(f"{env.base_url}/metrics")
        api.delete("/v1/connections", params=IDS)
        api.delete("/v1/connections", params=flow)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for secret in (TOKEN, IDS["workspace_id"], IDS["actor_id"], "nobody"):
        assert secret not in text
    found = families(text)
    reads = {labels["source"]: value for labels, value in found["oauthvault_token_reads_total"]}
    assert set(reads) == {"local", "redis", "database"} and sum(reads.values()) >= 3
    counts = {
        labels["outcome"]: value
        for labels, value in found["oauthvault_token_request_seconds_count"]
    }
    assert counts["served"] >= 3 and counts["not_found"] >= 1
    connections = found["oauthvault_connections"]
    assert any(
        labels == {"provider": "local", "status": "active"} and value >= 1
        for labels, value in connections
    )
    # Redis answered: the gauge says so (on a loaded machine one call may have timed out just
    # before, and the gauge then shows the breaker's view until its next probe succeeds).
    deadline = time.monotonic() + 10
    while found["oauthvault_cache_up"] != [({}, 1.0)]:
        assert time.monotonic() < deadline, found["oauthvault_cache_up"]
        time.sleep(0.2)
        with env.api() as api:  # a store writes to Redis: a call for the breaker to judge
            api.put("/v1/connections", json={**IDS, "access_token": TOKEN, "expires_in": 600})
            found = families(httpx.get(f"{env.base_url}/metrics").text)
            api.delete("/v1/connections", params=IDS)
    assert "oauthvault_local_cache_live" in found and "oauthvault_feed_reconnects_total" in found
    refreshes = found["oauthvault_refreshes_total"]
    assert any(labels == {"provider": "local", "outcome": "ok"} for labels, _ in refreshes)


def connection_gauge(text: str) -> dict[tuple[str, str], float]:
    return {
        (labels["provider"], labels["status"]): value
        for labels, value in families(text).get("oauthvault_connections", [])
    }


def test_an_unconfigured_provider_is_refused_and_never_a_metrics_label(env):
    """Failed before issue 26: any API key stored tokens for any provider name, and each
    name became a new ``provider`` label value of ``/metrics``."""
    with env.api() as api:
        body = {**IDS, "provider": "label-flood-1", "access_token": TOKEN, "expires_in": 600}
        refused = api.put("/v1/connections", json=body)
        assert refused.status_code == 404, refused.text
        assert refused.json()["code"] == "unknown_provider"
        text = httpx.get(f"{env.base_url}/metrics").text
    assert "label-flood-1" not in text


def test_connection_counts_are_cached_between_scrapes(tmp_path, postgres_url):
    """Failed before issue 26: every scrape of the unauthenticated ``/metrics`` ran a
    full-table count; now at most every ``metrics_refresh`` seconds."""
    settings = "metrics_refresh = 3600"
    with running_environment(
        tmp_path, postgres_url, None, generate_key(), auto_approve=True, service_settings=settings
    ) as cached:
        ids = {**IDS, "workspace_id": "ws_metrics_cached"}
        with cached.api() as api:
            first = connection_gauge(httpx.get(f"{cached.base_url}/metrics").text)
            stored = api.put("/v1/connections", json={**ids, "access_token": TOKEN})
            assert stored.status_code == 204
            try:
                again = connection_gauge(httpx.get(f"{cached.base_url}/metrics").text)
            finally:
                api.delete("/v1/connections", params=ids)
    assert again == first


def test_metrics_can_have_their_own_port(tmp_path, postgres_url):
    """Failed before issue 26: ``metrics_port`` did not exist (``/metrics`` was always on
    the service's port, open to whoever reaches it)."""
    port = free_port()
    with running_environment(
        tmp_path,
        postgres_url,
        None,
        generate_key(),
        auto_approve=True,
        service_settings=f"metrics_port = {port}\nmetrics_refresh = 0",
    ) as separate:
        ids = {**IDS, "workspace_id": "ws_metrics_port"}
        with separate.api() as api:
            assert (
                api.put("/v1/connections", json={**ids, "access_token": TOKEN}).status_code == 204
            )
            try:
                assert httpx.get(f"{separate.base_url}/metrics").status_code == 404
                deadline = time.monotonic() + 10
                while True:
                    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics")
                    assert scraped.status_code == 200
                    if connection_gauge(scraped.text).get(("local", "active"), 0) >= 1:
                        break
                    assert time.monotonic() < deadline, scraped.text
                    time.sleep(0.2)
            finally:
                api.delete("/v1/connections", params=ids)
    assert "oauthvault_token_reads_total" in scraped.text


def test_the_worker_serves_metrics_on_its_own_port(tmp_path):
    key = generate_key()
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with OAuthTokenCache(url, "", key) as vault:
        vault.store_tokens("google", "ws_worker_secret", "u", TOKEN, "r", expires_in=3600)
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "oauthvault", "worker"),
            *("--interval", "0.2", "--metrics-port", str(port)),
        ],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "OAUTH_ENCRYPTION_KEY": key},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
                break
            except httpx.HTTPError:
                assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert response.status_code == 200
        found = families(response.text)
        assert ({"provider": "google", "status": "active"}, 1.0) in found["oauthvault_connections"]
        assert "ws_worker_secret" not in response.text and TOKEN not in response.text
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode == 0


def test_the_metrics_port_is_checked(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "oauthvault", "worker", "--metrics-port", "0"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--metrics-port" in result.stderr


def test_key_encryptions_are_shown_by_key_id_with_the_limit(tmp_path, postgres_url):
    """Failed before issue 26: no count of encryptions per key (random nonces have a
    bound per key)."""
    key = generate_key()
    key_id = KeyRing.from_text(key).key_ids[0]
    with running_environment(tmp_path, postgres_url, None, key, auto_approve=True) as service:
        ids = {**IDS, "workspace_id": "ws_metrics_keys"}
        with service.api() as api:
            stored = api.put(
                "/v1/connections", json={**ids, "access_token": TOKEN, "refresh_token": "R"}
            )
            assert stored.status_code == 204
            try:
                found = families(httpx.get(f"{service.base_url}/metrics").text)
            finally:
                api.delete("/v1/connections", params=ids)
    encryptions = dict(
        (labels["key_id"], value) for labels, value in found["oauthvault_key_encryptions"]
    )
    assert set(encryptions) == {key_id}
    assert encryptions[key_id] >= 2  # the access and the refresh token, at least
    assert found["oauthvault_key_encryption_limit"] == [({}, 2**30)]
