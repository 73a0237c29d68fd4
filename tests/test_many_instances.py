"""Three ``oauthvault serve`` processes and two workers on one PostgreSQL and Redis, against
the real OpenID provider (short-lived, rotating refresh tokens, reuse detection):

- a connect flow started on one instance completes on another (as behind a load balancer);
- a refresh storm through every instance ends in exactly one grant per connection;
- a change made through one instance is read by the others within the documented bound;
- ``kill -9`` of an instance or a worker in the middle of a refresh loses nothing the
  database committed, and the next refresh succeeds.

Marked ``once``: it runs on the first Python of scripts/test.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from oauthvault import generate_key
from oauthvault.service.apikeys import generate_api_key, hash_api_key

from tests.helpers.net import free_port
from tests.helpers.oidc_server import OIDCServer
from tests.helpers.processes import start_serve, start_worker, stop
from tests.helpers.service_harness import open_link
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.once, pytest.mark.slow]

ACCESS_TTL = 5  # seconds: every connection needs a refresh soon
CONNECTIONS = 4
WORKSPACE = "ws_many"
CLIENT = {"client_id": "many-client", "client_secret": "many-secret"}
# What a staleness read may lag behind a change at most (README, "Staleness bound": about 2 s).
STALENESS_BOUND = 2.5


@dataclass
class Cluster:
    provider: OIDCServer
    settings: dict[str, str]
    api_key: str
    ports: list[int]
    instances: list[Popen[bytes]] = field(default_factory=list)
    workers: list[Popen[bytes]] = field(default_factory=list)

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"

    def api(self, index: int, timeout: float = 10) -> httpx.Client:
        return httpx.Client(
            base_url=self.url(index),
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=timeout,
        )

    def restart(self, index: int) -> None:
        self.instances[index] = start_serve(self.ports[index], self.settings)


def ids(actor: str) -> dict[str, str]:
    return {"provider": "local", "workspace_id": WORKSPACE, "actor_id": actor}


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, _redis_checked: str
) -> Iterator[Cluster]:
    ports = [free_port() for _ in range(3)]
    public = f"http://127.0.0.1:{ports[0]}"  # what the load balancer would be
    provider = OIDCServer(
        auto_approve=True,
        ttl={"AccessToken": ACCESS_TTL},
        clients=[
            {
                **CLIENT,
                "redirect_uris": [f"{public}/oauth/local/callback"],
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code", "refresh_token"],
            }
        ],
    ).start()
    api_key = generate_api_key()
    config: Path = tmp_path_factory.mktemp("many") / "oauthvault.toml"
    config.write_text(f"""
[service]
public_url = "{public}"
return_urls = ["{public}/app/"]

[[api_keys]]
name = "backend"
sha256 = "{hash_api_key(api_key)}"

[providers.local]
issuer = "{provider.issuer}"
client_id = "{CLIENT["client_id"]}"
client_secret = "{CLIENT["client_secret"]}"
scopes = ["openid", "offline_access"]
""")
    settings = {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": _redis_checked,
        "OAUTH_ENCRYPTION_KEY": generate_key(),
        "OAUTHVAULT_CONFIG": str(config),
        # A short lease, so a refresh left by a killed process is taken over in seconds:
        # 2 s discovery + 2 attempts x (2 s + 2 s backoff) + (2 s answer window + 2 s)
        # + 2 s save window = 16 s. (1 s requests timed out connecting to the local
        # provider on a loaded 2-core machine.)
        "OAUTHVAULT_REFRESH_TIMEOUT": "2",
        "OAUTHVAULT_REFRESH_ANSWER_WINDOW": "2",
        "OAUTHVAULT_REFRESH_SAVE_WINDOW": "2",
    }
    running = Cluster(provider, settings, api_key, ports)
    try:
        for port in ports:
            running.instances.append(start_serve(port, settings))
        yield running
    finally:
        for process in [*running.instances, *running.workers]:
            stop(process)
        provider.stop()


def on(url: str, port: int) -> str:
    """``url`` sent to another instance (the load balancer picked another one)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, f"127.0.0.1:{port}", parts.path, parts.query, ""))


def connect(cluster: Cluster, actor: str, start: int, finish: int) -> None:
    """A connect flow whose link is made on instance 0, started on ``start`` and whose
    callback lands on ``finish``."""
    with cluster.api(0) as api:
        made = api.post(
            "/v1/connect-links", json={**ids(actor), "return_url": f"{cluster.url(0)}/app/done"}
        )
    assert made.status_code == 201, made.text
    with httpx.Client(timeout=10) as browser:
        response = open_link(browser, on(made.json()["url"], cluster.ports[start]))
        for _ in range(20):
            assert response.status_code in (302, 303), response.text
            location = str(response.url.join(response.headers["location"]))
            if "/oauth/local/callback" in location:
                location = on(location, cluster.ports[finish])
            elif "/app/done" in location:
                assert "oauthvault_status=connected" in location, location
                return
            elif "code_challenge=" in location:
                location += f"&login_hint={actor}"
            response = browser.get(location)
    raise AssertionError("the flow did not end")


def token(cluster: Cluster, index: int, actor: str, min_ttl: int = 1) -> str:
    with cluster.api(index, timeout=30) as api:
        response = api.get("/v1/connections/token", params={**ids(actor), "min_ttl": min_ttl})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def grants(cluster: Cluster) -> int:
    return cluster.provider.stats().get("refresh_token_ok", 0)


ACTORS = [f"many-{n}" for n in range(CONNECTIONS)]


def test_a_flow_started_on_one_instance_completes_on_another(cluster):
    for n, actor in enumerate(ACTORS):
        connect(cluster, actor, start=n % 3, finish=(n + 1) % 3)
    with cluster.api(2) as api:
        listed = api.get("/v1/connections", params={"workspace_id": WORKSPACE}).json()
    assert sorted(row["actor_id"] for row in listed) == ACTORS


def test_a_refresh_storm_through_every_instance_is_one_grant_per_connection(cluster):
    time.sleep(ACCESS_TTL + 0.5)  # every access token has expired
    before = grants(cluster)
    calls = [(index, actor) for actor in ACTORS for index in range(3) for _ in range(5)]
    with ThreadPoolExecutor(len(calls)) as pool:
        seen = list(pool.map(lambda call: (call[1], token(cluster, *call)), calls))
    assert grants(cluster) - before == CONNECTIONS
    for actor in ACTORS:  # everyone was handed the one new token
        assert len({value for who, value in seen if who == actor}) == 1


def test_a_change_through_one_instance_is_read_by_the_others_within_the_bound(cluster):
    actor = "many-stored"  # stored by the API: the connected ones keep their refresh tokens

    def store(access_token: str) -> None:
        with cluster.api(0) as api:
            stored = api.put(
                "/v1/connections",
                json={**ids(actor), "access_token": access_token, "expires_in": 3600},
            )
        assert stored.status_code == 204, stored.text

    store("first")
    for index in (1, 2):
        assert token(cluster, index, actor) == "first"  # both instances have it cached now
    changed = f"changed-{uuid.uuid4().hex}"
    store(changed)
    written = time.monotonic()
    for index in (1, 2):
        wait_for(
            lambda index=index: token(cluster, index, actor) == changed, STALENESS_BOUND, "stale"
        )
    assert time.monotonic() - written < STALENESS_BOUND
    with cluster.api(0) as api:
        assert api.delete("/v1/connections", params=ids(actor)).json()["deleted"] is True


def refresh(cluster: Cluster, index: int, actor: str) -> httpx.Response:
    with cluster.api(index, timeout=60) as api:
        return api.post("/v1/connections/refresh", json=ids(actor))


def test_an_instance_killed_mid_refresh_loses_nothing_and_the_next_refresh_succeeds(cluster):
    actor = ACTORS[1]
    # The provider holds the next token request for 4 s and then fails it (so it rotates
    # nothing): the instance is killed while it waits, holding the refresh lease.
    started = cluster.provider.stats().get("refresh_token", 0)
    cluster.provider.fail(status=503, delay_ms=4000, count=1)
    victim: dict[str, Any] = {}

    def doomed() -> None:
        try:
            victim["response"] = refresh(cluster, 1, actor)
        except httpx.HTTPError as error:
            victim["error"] = error

    thread = threading.Thread(target=doomed)
    thread.start()
    wait_for(lambda: cluster.provider.stats().get("refresh_token", 0) > started, 10, "no request")
    stop(cluster.instances[1], kill=True)
    thread.join(timeout=10)
    assert "error" in victim  # the connection died with the process
    # Restarted while the lease runs out, so that it reads the new token while that is fresh
    # (5-second tokens: a restart on a busy machine took longer than their fresh 3.75 s).
    cluster.restart(1)
    # Another instance takes the lease over once it has run out, and the refresh works.
    before = grants(cluster)
    taken_over = refresh(cluster, 2, actor)
    assert taken_over.status_code == 200, taken_over.text
    assert grants(cluster) == before + 1
    assert token(cluster, 1, actor) == taken_over.json()["access_token"]
    # A refresh the database did commit survives the kill that follows it at once.
    committed = refresh(cluster, 0, actor)
    assert committed.status_code == 200
    stop(cluster.instances[0], kill=True)
    cluster.restart(0)
    assert refresh(cluster, 0, actor).status_code == 200


def test_a_worker_killed_mid_refresh_is_replaced_and_every_connection_still_refreshes(cluster):
    started = cluster.provider.stats().get("refresh_token", 0)
    cluster.provider.fail(status=503, delay_ms=4000, count=1)
    worker_args = ("--interval", "1", "--lead-time", "60")
    first = start_worker(cluster.settings, *worker_args)
    cluster.workers.append(first)
    wait_for(lambda: cluster.provider.stats().get("refresh_token", 0) > started, 20, "no refresh")
    stop(first, kill=True)
    cluster.workers = [
        start_worker(cluster.settings, *worker_args),
        start_worker(cluster.settings, *worker_args),
    ]
    before = {actor: token(cluster, 0, actor, min_ttl=0) for actor in ACTORS}
    # The two new workers refresh every connection (the abandoned one after its lease).
    wait_for(
        lambda: all(token(cluster, 0, a, min_ttl=0) != before[a] for a in ACTORS),
        40,
        "the workers did not refresh every connection",
    )
    for process in cluster.workers:
        stop(process)
    cluster.workers = []
    with cluster.api(2) as api:
        listed = api.get("/v1/connections", params={"workspace_id": WORKSPACE}).json()
    assert {row["status"] for row in listed} == {"active"}
    for actor in ACTORS:  # no rotated refresh token was lost: each one refreshes again
        assert refresh(cluster, 2, actor).status_code == 200
