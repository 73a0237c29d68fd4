"""The soak: several service instances and workers on a private PostgreSQL and Redis, the
test OpenID provider with short-lived rotating tokens, HTTP clients mixing reads, stores,
deletes and connect flows, and faults injected on a schedule. A checker then reads the
provider's grant log and every client's observations and says what went wrong.

Run it with ``scripts/soak [--minutes N] [--connections N] [--instances N]`` (loopback only;
it stops by itself). The last line it prints is::

    soak: <requests> requests, <wrong_tenant> wrong tenant, <superseded> superseded,
    <lost> lost, <dead> wrongly dead, <grants> grants for <rounds> refresh rounds
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from oauthvault import generate_key
from oauthvault.service.apikeys import generate_api_key, hash_api_key
from oauthvault.service.openapi import ERROR_CODES
from oauthvault.service.outcomes import OUTCOMES

from tests.helpers.net import free_port
from tests.helpers.oidc_server import OIDCServer
from tests.helpers.postgres_server import PostgresServer
from tests.helpers.processes import start_serve, start_worker, stop
from tests.helpers.redis_server import RedisServer
from tests.helpers.service_harness import open_link

ACCESS_TTL = 8  # seconds: refreshes run all the time
WORKSPACES = 8
CLIENTS = 4
# How far behind a read may be after a change (README, "Staleness bound"), plus a client's
# own request time.
STALENESS = 2.5
LOGS = Path(tempfile.gettempdir()) / "oauthvault-soak"  # each process's log, after a run


@dataclass
class Observation:
    """One client request: what it asked for and what it got."""

    kind: str  # read, store, delete, connect, link (a connect link the API did not make)
    connection: tuple[str, str]  # workspace, actor
    instance: int
    started: float
    ended: float
    status: int  # HTTP status, 0 for a transport error
    code: str | None = None
    token: str | None = None
    phase: str = ""


@dataclass
class Soak:
    minutes: float
    connections: int
    instances: int
    postgres: PostgresServer
    redis: RedisServer
    provider: OIDCServer
    settings: dict[str, str]
    api_key: str
    ports: list[int]
    database: str
    services: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    phase: str = "warm-up"
    started: float = 0.0  # when the schedule began (monotonic), for the findings' times
    observations: list[Observation] = field(default_factory=list)
    stored: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # token -> owner, at
    oauth: dict[tuple[str, str], float] = field(default_factory=dict)  # connected, since when
    # Each kill: when (monotonic) and the killed process's pid.
    kills: list[tuple[float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"


# --- the environment ---------------------------------------------------------------------------


@contextmanager
def environment(minutes: float, connections: int, instances: int) -> Iterator[Soak]:
    postgres, redis_server = PostgresServer(), RedisServer()
    postgres.start()
    redis_server.start()
    database = f"soak_{uuid.uuid4().hex[:8]}"
    database_url = postgres.create_database(database)
    ports = [free_port() for _ in range(instances)]
    public = f"http://127.0.0.1:{ports[0]}"
    provider = OIDCServer(
        auto_approve=True,
        ttl={"AccessToken": ACCESS_TTL},
        clients=[
            {
                "client_id": "soak-client",
                "client_secret": "soak-secret",
                "redirect_uris": [f"{public}/oauth/local/callback"],
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code", "refresh_token"],
            }
        ],
    ).start()
    api_key = generate_api_key()
    config = Path(tempfile.mkdtemp(prefix="oauthvault-soak-")) / "oauthvault.toml"
    config.write_text(f"""
[service]
public_url = "{public}"
return_urls = ["{public}/app/"]

[[api_keys]]
name = "soak"
sha256 = "{hash_api_key(api_key)}"

[providers.local]
issuer = "{provider.issuer}"
client_id = "soak-client"
client_secret = "soak-secret"
scopes = ["openid", "offline_access"]
""")
    settings = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server.url,
        "OAUTH_ENCRYPTION_KEY": generate_key(),
        "OAUTHVAULT_CONFIG": str(config),
        "OAUTHVAULT_REFRESH_TIMEOUT": "2",
        "OAUTHVAULT_REFRESH_ANSWER_WINDOW": "4",
        "OAUTHVAULT_REFRESH_SAVE_WINDOW": "5",
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "oauthvault", "migrate"],
        env={"PATH": "/usr/bin:/bin", **settings},
        capture_output=True,
        check=False,
    )
    if migrate.returncode != 0:
        raise RuntimeError(f"migrate failed: {migrate.stderr.decode()[-2000:]}")
    soak = Soak(
        minutes,
        connections,
        instances,
        postgres,
        redis_server,
        provider,
        settings,
        api_key,
        ports,
        database,
    )
    try:
        soak.services = [start_serve(port, settings) for port in ports]
        soak.workers = [start_worker(settings, "--interval", "1", "--lead-time", "3")]
        soak.workers.append(start_worker(settings, "--interval", "1", "--lead-time", "3"))
        yield soak
    finally:
        soak.stopping.set()
        LOGS.mkdir(parents=True, exist_ok=True)
        for name, process in [
            *((f"instance-{n}", p) for n, p in enumerate(soak.services)),
            *((f"worker-{n}", p) for n, p in enumerate(soak.workers)),
        ]:
            (LOGS / f"{name}.log").write_text(stop(process))
        provider.stop()
        redis_server.close()
        postgres.close()


# --- clients -----------------------------------------------------------------------------------


def ids(connection: tuple[str, str]) -> dict[str, str]:
    return {"provider": "local", "workspace_id": connection[0], "actor_id": connection[1]}


def problem_code(response: httpx.Response) -> str | None:
    if response.status_code < 400:
        return None
    try:
        return str(response.json().get("code"))
    except ValueError:
        return "not-json"


def perhaps_done(status: int, code: str | None) -> bool:
    """Whether a write whose answer says it failed may have been carried out all the same:
    no answer at all (an instance killed while it ran), or the database's connection lost
    around the commit. Any other error means nothing was written."""
    return status == 0 or (status == 503 and code == "storage_unavailable")


class LinkRefused(Exception):
    """The API did not make the connect link (an API answer, not a flow's outcome)."""

    def __init__(self, response: httpx.Response) -> None:
        self.status, self.code = response.status_code, problem_code(response)
        super().__init__(f"no connect link: {self.status} {self.code}")


def connect(
    soak: Soak, client: httpx.Client, connection: tuple[str, str], instance: int
) -> tuple[int, str | None]:
    """A whole connect flow through ``instance`` (the callback lands on another one): the
    flow's status and outcome code. Raises :class:`LinkRefused` if no link was made."""
    base = soak.url(instance)
    made = client.post(
        f"{base}/v1/connect-links", json={**ids(connection), "return_url": f"{soak.url(0)}/app/x"}
    )
    if made.status_code != 201:
        raise LinkRefused(made)
    with httpx.Client(timeout=15) as browser:
        target = made.json()["url"].replace(soak.url(0), base, 1)
        response = open_link(browser, target)
        for _ in range(20):
            if response.status_code not in (302, 303):  # one of our pages: its code
                shown = re.search(r'id="code">([a-z_]+)<', response.text)
                return response.status_code, shown[1] if shown else "page"
            location = str(response.url.join(response.headers["location"]))
            if "/app/x" in location:
                outcome = parse_qs(urlsplit(location).query)
                if outcome.get("oauthvault_status") == ["connected"]:
                    return 200, None
                return 400, outcome.get("oauthvault_error", ["?"])[0]
            if "/oauth/local/callback" in location:
                other = soak.url((instance + 1) % soak.instances)
                location = location.replace(soak.url(0), other, 1)
            elif "code_challenge=" in location:
                location += f"&login_hint={connection[0]}.{connection[1]}"
            response = browser.get(location)
    return 599, "too_many_redirects"


def run_client(soak: Soak, number: int, deadline: float) -> None:
    rng = random.Random(number)
    workspaces = [f"ws-{w}" for w in range(WORKSPACES)]
    headers = {"Authorization": f"Bearer {soak.api_key}"}
    stored_connections = [(f"ws-{w}", f"stored-{number}-{w}") for w in range(WORKSPACES)]
    # Longer than a refresh lease (2 s + 3 x (2 s + 2 s) + 5 s = 19 s): a read waiting for a
    # killed refresher's lease to run out is slow, not failed.
    with httpx.Client(headers=headers, timeout=30) as client:
        while time.monotonic() < deadline and not soak.stopping.is_set():
            instance = rng.randrange(soak.instances)
            base = soak.url(instance)
            roll = rng.random()
            value: str | None = None
            if roll < 0.90:
                kind = "read"
                with soak.lock:
                    connected = list(soak.oauth)
                connection = rng.choice(connected + stored_connections[:2])
            elif roll < 0.975:
                kind = "store" if roll < 0.95 else "delete"
                connection = rng.choice(stored_connections)
                value = f"stored.{connection[0]}.{connection[1]}.{uuid.uuid4().hex}"
            else:  # a new connection, of a workspace's next user
                kind = "connect"
                connection = (rng.choice(workspaces), f"new-{number}-{uuid.uuid4().hex[:8]}")
            started = time.monotonic()
            status: int
            code: str | None
            try:
                if kind == "read":
                    response = client.get(
                        f"{base}/v1/connections/token", params={**ids(connection), "min_ttl": 1}
                    )
                    status, code = response.status_code, problem_code(response)
                    if response.is_success:
                        value = response.json().get("access_token")
                elif kind == "store":
                    response = client.put(
                        f"{base}/v1/connections",
                        json={**ids(connection), "access_token": value, "expires_in": 3600},
                    )
                    status, code = response.status_code, problem_code(response)
                    if status == 204 or perhaps_done(status, code):
                        assert value is not None
                        with soak.lock:
                            soak.stored[value] = (*connection, time.monotonic())
                elif kind == "delete":
                    value = None
                    response = client.delete(f"{base}/v1/connections", params=ids(connection))
                    status, code = response.status_code, problem_code(response)
                else:
                    try:
                        status, code = connect(soak, client, connection, instance)
                    except LinkRefused as refused:  # judged as the API answer it is
                        kind, status, code = "link", refused.status, refused.code
                    if status == 200:
                        with soak.lock:
                            soak.oauth[connection] = time.monotonic()
            except httpx.HTTPError as error:
                # The request may or may not have been carried out (an instance killed
                # while it ran): the checker counts a write like this as either.
                status, code = 0, f"transport:{type(error).__name__}"
                if kind == "read":
                    value = None
                elif kind == "store":
                    assert value is not None
                    with soak.lock:  # if it was committed, it belongs to this connection
                        soak.stored[value] = (*connection, time.monotonic())
            observation = Observation(
                kind, connection, instance, started, time.monotonic(), status, code, value
            )
            observation.phase = soak.phase
            with soak.lock:
                soak.observations.append(observation)


# --- faults ------------------------------------------------------------------------------------


def schedule(soak: Soak) -> list[tuple[str, Callable[[], None], float]]:
    """The faults in order: (phase name, injection, how long the phase lasts)."""
    unit = soak.minutes * 60 / 10  # a tenth of the run
    freeze = min(20.0, unit * 0.8)
    outage = min(30.0, unit * 0.8)

    def redis_frozen() -> None:
        soak.redis.freeze()
        soak.stopping.wait(freeze)
        soak.redis.thaw()

    def redis_restarted() -> None:
        soak.redis.stop()
        soak.redis.start()

    def postgres_restarted() -> None:
        soak.postgres.restart()
        soak.stopping.wait(1)
        soak.postgres.terminate_backends(soak.database)

    def provider_503s() -> None:
        soak.provider.fail(status=503, count=5)

    def provider_outage() -> None:
        soak.provider.fail(status=503, count=1_000_000)
        soak.stopping.wait(outage)
        soak.provider.fail(status=503, count=0)  # over

    def instance_killed() -> None:
        victim = len(soak.services) - 1
        soak.kills.append((time.monotonic(), soak.services[victim].pid))
        stop(soak.services[victim], kill=True)
        soak.stopping.wait(1)
        soak.services[victim] = start_serve(soak.ports[victim], soak.settings)

    def worker_killed() -> None:
        soak.kills.append((time.monotonic(), soak.workers[0].pid))
        stop(soak.workers[0], kill=True)
        soak.workers[0] = start_worker(soak.settings, "--interval", "1", "--lead-time", "3")

    return [
        ("baseline", lambda: None, unit),
        ("redis-frozen", redis_frozen, unit * 0.2),
        ("redis-restarted-empty", redis_restarted, unit),
        ("postgres-restarted", postgres_restarted, unit),
        ("provider-503-burst", provider_503s, unit),
        ("provider-outage", provider_outage, unit * 0.2),
        ("instance-killed", instance_killed, unit),
        ("worker-killed", worker_killed, unit),
        ("settle", lambda: None, unit),
    ]


# --- checking ----------------------------------------------------------------------------------


@dataclass
class Findings:
    requests: int
    wrong_tenant: int
    superseded: int
    lost: int
    dead: int
    killed_mid_save: int  # see killed_before_saving()
    grants: int
    rounds: int
    phases: list[str]
    problems: list[str]
    excused: list[str]  # the connections counted in killed_mid_save, and why

    def killed_before_saving_line(self) -> str:
        return (
            f"{self.killed_mid_save} connection(s) lost a rotated refresh token to a kill "
            "before its save (the window README's Refresh section names; not counted dead)"
        )

    def line(self) -> str:
        return (
            f"soak: {self.requests} requests, {self.wrong_tenant} wrong tenant, "
            f"{self.superseded} superseded, {self.lost} lost, {self.dead} wrongly dead, "
            f"{self.grants} grants for {self.rounds} refresh rounds"
        )


# What a client may be answered while a fault lasts (documented problem codes); anything
# else (a 500, a body that is not a problem, an undocumented code) is a finding.
ALLOWED = set(ERROR_CODES) - {"vault_error", "config_error"}  # a 500 is always a finding
# How a connect flow may end during a fault: a code passed to the return URL.
CONNECT_OUTCOMES = set(OUTCOMES) - {"no_outcome"}


def check(soak: Soak) -> Findings:
    issued = soak.provider.issued()
    owner_of = {entry["token"]: tuple(entry["account"].split(".", 1)) for entry in issued}
    # Where each token stands in its connection's history: issue time (provider) or the
    # moment its store returned (client), on one clock (monotonic, shifted).
    shift = time.time() - time.monotonic()
    order: dict[str, float] = {entry["token"]: entry["at"] - shift for entry in issued}
    for token, (_, _, at) in soak.stored.items():
        order[token] = at
    reads = sorted(
        (o for o in soak.observations if o.kind == "read" and o.token), key=lambda o: o.started
    )
    wrong = superseded = 0
    newest_seen: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for read in reads:
        assert read.token is not None
        owner = owner_of.get(read.token) or soak.stored.get(read.token, ("?", "?", 0))[:2]
        if tuple(owner) != read.connection:
            wrong += 1
        position = order.get(read.token)
        if position is None:
            continue
        # Superseded: an earlier read, done well before this one began, saw a newer token.
        for ended, seen in newest_seen[read.connection]:
            if ended < read.started - STALENESS and seen > position:
                superseded += 1
                break
        newest_seen[read.connection].append((read.ended, position))
    # Stores and deletes: the last acknowledged write of each connection must be what a read
    # finds at the end, unless a later write whose answer never came (a transport error or a
    # 5xx) may have been carried out: then that one's result is as good.
    lost = 0
    problems: list[str] = []
    headers = {"Authorization": f"Bearer {soak.api_key}"}
    writes: dict[tuple[str, str], list[Observation]] = defaultdict(list)
    for o in sorted(soak.observations, key=lambda o: o.started):
        if o.kind in ("store", "delete"):
            writes[o.connection].append(o)
    with httpx.Client(base_url=soak.url(0), headers=headers, timeout=30) as api:
        for connection, history in writes.items():
            acknowledged = [n for n, o in enumerate(history) if o.status in (200, 204)]
            if not acknowledged:
                continue
            possible = [history[acknowledged[-1]]] + [
                o for o in history[acknowledged[-1] + 1 :] if perhaps_done(o.status, o.code)
            ]
            answer = api.get("/v1/connections/token", params={**ids(connection), "min_ttl": 0})
            found = answer.json()["access_token"] if answer.is_success else None
            if answer.status_code not in (200, 404) or not any(
                found == (o.token if o.kind == "store" else None) for o in possible
            ):
                lost += 1
                problems.append(
                    f"{connection}: lost; the end read answered {answer.status_code} "
                    f"{found or problem_code(answer)}, the last writes were "
                    + ", ".join(
                        f"{o.kind} {o.token} -> {o.status} {o.code} in {o.phase}"
                        for o in history[-4:]
                    )
                )
        dead = 0
        excused: list[str] = []
        before = last_errors(api, soak.oauth)  # the end refreshes below may overwrite them
        used_kills: set[int] = set()
        for connection in soak.oauth:  # every refresh token still works
            refreshed = api.post("/v1/connections/refresh", json=ids(connection))
            if refreshed.status_code == 200:
                continue
            kill = killed_before_saving(
                soak, api, connection, refreshed, issued, shift, before, used_kills
            )
            if kill is not None:
                used_kills.add(kill)
                named = f":{kill}:" in before.get(connection, "")
                excused.append(
                    f"{connection}: its refresh by process {kill} was killed (the lease note "
                    + ("names it)" if named else f"does not name it: {before.get(connection)!r})")
                )
                continue
            dead += 1
            account = f"{connection[0]}.{connection[1]}"
            grants_at = [
                round(float(e["at"]) - shift - soak.started, 2)
                for e in issued
                if e["account"] == account
            ][-3:]
            kills = [(round(at - soak.started, 2), pid) for at, pid in soak.kills]
            problems.append(
                f"{connection}: refresh at the end answered {refreshed.text}; its last_error "
                f"before: {before.get(connection)!r}; its last grants at {grants_at} s, "
                f"kills (s, pid) {kills}"
            )
    for o in soak.observations:
        if o.status == 0:  # only the killed instance may refuse or drop a connection
            if o.phase != "instance-killed" or "Timeout" in (o.code or ""):
                problems.append(f"{o.phase}: {o.code} from instance {o.instance}")
        elif o.kind == "connect" and o.status >= 400:
            if o.code not in CONNECT_OUTCOMES:
                problems.append(f"{o.phase}: a connect flow ended with {o.status} {o.code}")
        elif o.status >= 400 and o.code not in ALLOWED:
            problems.append(f"{o.phase}: {o.kind} answered {o.status} {o.code}")
    grants = sum(1 for entry in issued if entry["grant"] == "refresh_token")
    # The fewest grants that keep every connection's token valid: one per token lifetime
    # each connection has lived (the end-of-run check's refreshes not counted).
    checked_at = time.monotonic()
    rounds = sum(int((checked_at - since) // ACCESS_TTL) for since in soak.oauth.values())
    return Findings(
        len(soak.observations),
        wrong,
        superseded,
        lost,
        dead,
        len(excused),
        grants,
        rounds,
        [],
        problems,
        excused,
    )


def last_errors(
    api: httpx.Client, connections: dict[tuple[str, str], float]
) -> dict[tuple[str, str], str]:
    """Each connection's ``last_error`` now, from the listing of its workspace."""
    found: dict[tuple[str, str], str] = {}
    for workspace in sorted({w for w, _ in connections}):
        listed = api.get("/v1/connections", params={"workspace_id": workspace, "limit": 1000})
        if listed.status_code != 200:
            raise RuntimeError(f"listing {workspace} answered {listed.status_code}")
        for row in listed.json():
            found[(workspace, row["actor_id"])] = row["last_error"] or ""
    return found


def killed_before_saving(
    soak: Soak,
    api: httpx.Client,
    connection: tuple[str, str],
    refreshed: httpx.Response,
    issued: list[dict[str, object]],
    shift: float,
    before: dict[tuple[str, str], str],
    used_kills: set[int],
) -> int | None:
    """The pid of the killed process whose refresh of ``connection`` rotated its refresh
    token and died before saving it: the one loss no vault can prevent (README, "Refresh").
    ``None`` unless the evidence is there: the end refresh answered
    ``reauthorization_required``; the row's ``last_error`` says a refresh by that process
    ended without saving its result (written when its lease was taken over); the provider's
    last grant for the connection came less than 3 s before that process was killed (or
    within a second after: the provider logs it when made); the stored token is not that
    grant's. A kill the lease note names explains each connection that names it; an
    unnamed one, at most one connection. The note is preferred, not required: the excused
    line says whether it named the process."""
    if refreshed.status_code != 409 or problem_code(refreshed) != "reauthorization_required":
        return None
    account = f"{connection[0]}.{connection[1]}"
    grants = [e for e in issued if e["account"] == account and e["grant"] == "refresh_token"]
    if not grants:
        return None
    last = float(grants[-1]["at"]) - shift  # type: ignore[arg-type]
    listed = api.get("/v1/connections", params={"workspace_id": connection[0], "limit": 1000})
    if listed.status_code != 200:
        return None
    row = next((r for r in listed.json() if r["actor_id"] == connection[1]), None)
    if row is None or row["expires_at"] is None:
        return None
    notes = before.get(connection, "") + " " + (row["last_error"] or "")
    # The provider logs a grant when it has made it, which can be a moment after the kill of
    # the process whose request it was answering.
    near = [pid for at, pid in soak.kills if -1 < at - last < 3]
    # The kill whose process the lease note names (a killed instance may have been in the
    # middle of several refreshes: each names it), else the first unused one just after
    # the grant (an unnamed kill explains one connection only).
    named = next((pid for pid in near if f":{pid}:" in notes), None)
    unused = [pid for pid in near if pid not in used_kills]
    kill = named if named is not None else (unused[0] if unused else None)
    if kill is None:
        return None
    expires = dt.datetime.fromisoformat(row["expires_at"]).timestamp() - shift
    return kill if abs(expires - (last + ACCESS_TTL)) > 1 else None


def report(soak: Soak) -> list[str]:
    lines = []
    by_phase: dict[str, list[Observation]] = defaultdict(list)
    for o in soak.observations:
        by_phase[o.phase].append(o)
    for phase, seen in by_phase.items():
        latencies = sorted(
            (o.ended - o.started) * 1000 for o in seen if o.kind == "read" and o.status
        )
        errors = Counter(f"{o.status}:{o.code}" for o in seen if o.status >= 400 or o.status == 0)
        p50 = statistics.median(latencies) if latencies else 0.0
        p99 = (
            latencies[int(len(latencies) * 0.99) - 1]
            if len(latencies) >= 100
            else max(latencies, default=0.0)
        )
        slowest = max(latencies, default=0.0)
        lines.append(
            f"  {phase:<22} {len(seen):>6} requests  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  "
            f"max {slowest:8.1f} ms  errors {dict(errors) or '-'}"
        )
    return lines


def run(minutes: float = 10, connections: int = 50, instances: int = 3) -> Findings:
    with environment(minutes, connections, instances) as soak:
        headers = {"Authorization": f"Bearer {soak.api_key}"}
        with httpx.Client(headers=headers, timeout=15) as client:
            for n in range(connections):
                connection = (f"ws-{n % WORKSPACES}", f"user-{n}")
                try:
                    status, code = connect(soak, client, connection, n % instances)
                except LinkRefused as refused:
                    raise RuntimeError(f"connecting {connection}: {refused}") from None
                if status != 200:
                    raise RuntimeError(f"connecting {connection} answered {status} {code}")
                soak.oauth[connection] = time.monotonic()
        started_at = soak.started = time.monotonic()
        deadline = started_at + minutes * 60 + 60  # the clients stop when the schedule ends
        clients = [
            threading.Thread(target=run_client, args=(soak, n, deadline), daemon=True)
            for n in range(CLIENTS)
        ]
        for thread in clients:
            thread.start()
        for phase, inject, lasts in schedule(soak):
            soak.phase = phase
            print(f"{time.monotonic() - started_at:6.1f} s  {phase}", file=sys.stderr)
            inject()
            soak.stopping.wait(lasts)
        soak.stopping.set()
        for thread in clients:
            thread.join(timeout=30)
        soak.phase = "check"
        findings = check(soak)
        findings.phases = report(soak)
        return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--instances", type=int, default=3)
    options = parser.parse_args(argv)
    if not 0.5 <= options.minutes <= 120 or not 1 <= options.connections <= 10_000:
        parser.error("--minutes is 0.5 to 120 and --connections 1 to 10000")
    if not 2 <= options.instances <= 8:
        parser.error("--instances is 2 to 8")
    findings = run(options.minutes, options.connections, options.instances)
    print("\n".join(findings.phases))
    for problem in findings.problems[:50]:
        print(f"  problem: {problem}")
    if findings.killed_mid_save:
        print(f"  {findings.killed_before_saving_line()}")
        for excused in findings.excused:
            print(f"    {excused}")
    print(findings.line())
    clean = not (findings.wrong_tenant or findings.superseded or findings.lost or findings.dead)
    return 0 if clean and not findings.problems else 1


if __name__ == "__main__":
    sys.exit(main())
