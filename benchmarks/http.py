"""The HTTP benchmark: the service's token endpoint next to a bare FastAPI + Redis GET.

Both apps (``benchmarks/http_apps.py``) run in their own ``python -m uvicorn --factory``
process with the same settings (one worker, asyncio loop, h11, no access log) on a free
127.0.0.1 port. ``wrk`` (one thread, keep-alive) loads them in turn, floor then ours, for
``rounds`` rounds; every figure is the median over rounds.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import redis

from benchmarks import http_apps
from benchmarks.dataset import ACCESS, REFRESH, SCOPE
from oauthvault import OAuthTokenCache, TokenKey
from oauthvault.cache import cache_key
from oauthvault.service.apikeys import generate_api_key, hash_api_key

ROOT = Path(__file__).resolve().parent.parent
CONNECTION = TokenKey("google", "ws_http", "user_http")
UVICORN_SETTINGS = (
    "--workers",
    "1",
    "--loop",
    "asyncio",
    "--http",
    "h11",
    "--no-access-log",
    "--log-level",
    "warning",
)
WARMUP_REQUESTS = 200
START_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def _wait_until_listening(server: Server, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode}:\n{server.output()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{server.name} did not listen within {START_TIMEOUT_S} s:\n{server.output()}"
                ) from None
            time.sleep(0.05)


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()  # uvicorn shuts down gracefully on SIGTERM
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


@contextmanager
def serve(name: str, factory: str, env: dict[str, str], workdir: Path) -> Iterator[Server]:
    """``python -m uvicorn --factory benchmarks.http_apps:<factory>`` (or ``module:factory``)
    on a free port, stopped on exit (also on error). A port taken between probing and
    binding means another try."""
    target = factory if ":" in factory else f"benchmarks.http_apps:{factory}"
    for attempt in range(3):
        port = free_port()
        log = workdir / f"{name}-{attempt}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    target,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    *UVICORN_SETTINGS,
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        server = Server(name, process, f"http://127.0.0.1:{port}", log)
        try:
            _wait_until_listening(server, port)
        except RuntimeError:
            _stop(server)
            if attempt == 2 or "address already in use" not in server.output().lower():
                raise
            continue
        try:
            yield server
        finally:
            _stop(server)
        return


# --- wrk -----------------------------------------------------------------------------------

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_REQUESTS = re.compile(r"^\s*(\d+) requests in", re.MULTILINE)


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    socket_errors: int


def parse_wrk(output: str) -> WrkResult:
    """Requests/s and the 50 % / 99 % lines of ``wrk --latency`` ("Latency Distribution")."""
    section = output.split("Latency Distribution", 1)
    if len(section) != 2:
        raise ValueError(f"no latency distribution in wrk output:\n{output}")
    percentiles = {
        int(found[0]): float(found[1]) * _UNITS_MS[found[2]]
        for found in _PERCENTILE.findall(section[1])
    }
    rps = _RPS.search(output)
    requests = _REQUESTS.search(output)
    if rps is None or requests is None or set(percentiles) != {50, 99}:
        raise ValueError(f"unexpected wrk output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    if non_2xx is not None and int(non_2xx.group(1)) > 0:
        raise RuntimeError(f"{non_2xx.group(1)} non-2xx responses under load:\n{output}")
    errors = _SOCKET_ERRORS.search(output)
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        requests=int(requests.group(1)),
        socket_errors=0 if errors is None else sum(int(n) for n in errors.groups()),
    )


def run_wrk(url: str, *, duration_s: int, connections: int, headers: dict[str, str]) -> WrkResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk; scripts/bench does)")
    command = [wrk, "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    done = subprocess.run(
        [*command, url],
        capture_output=True,
        text=True,
        check=False,
        timeout=duration_s + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr}{done.stdout}")
    return parse_wrk(done.stdout)


def _median(results: list[WrkResult]) -> dict[str, float]:
    return {
        "requests_per_s": round(statistics.median(r.requests_per_s for r in results), 1),
        "p50_ms": round(statistics.median(r.p50_ms for r in results), 3),
        "p99_ms": round(statistics.median(r.p99_ms for r in results), 3),
        "requests": sum(r.requests for r in results),
        "socket_errors": sum(r.socket_errors for r in results),
    }


# --- the benchmark -------------------------------------------------------------------------


def _store_connection(database_url: str, redis_url: str, key: str) -> bytes:
    """Store the measured connection, warm its cache entry and give the floor a value of the
    same size; returns the cached value."""
    vault = OAuthTokenCache(database_url, redis_url, key)
    try:
        vault.store_tokens(*_ids(CONNECTION), ACCESS, REFRESH, 3600, SCOPE)
        assert vault.get_tokens(*_ids(CONNECTION)) is not None
    finally:
        vault.close()
    client = redis.Redis.from_url(redis_url)
    try:
        value = client.get(cache_key(CONNECTION))
        if value is None:
            raise RuntimeError("the connection was not cached (is Redis reachable?)")
        client.set(http_apps.floor_cache_name(*_ids(CONNECTION)), value, ex=3600)
        return bytes(value)
    finally:
        client.close()


def _ids(key: TokenKey) -> tuple[str, str, str]:
    return (key.provider, key.workspace_id, key.actor_id)


def _verify_and_warm(ours_url: str, floor_url: str, api_key: str) -> int:
    """Both answer 200 (ours with the right token) before any load; returns ours' body size."""
    auth = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(timeout=10) as client:
        answer = client.get(ours_url, headers=auth)
        if answer.status_code != 200:
            raise RuntimeError(f"token endpoint answered {answer.status_code}: {answer.text}")
        body = answer.json()
        if body.get("access_token") != ACCESS or body.get("scope") != SCOPE:
            raise RuntimeError("token endpoint returned the wrong token")
        floor = client.get(floor_url)
        if floor.status_code != 200:
            raise RuntimeError(f"floor endpoint answered {floor.status_code}: {floor.text}")
        for _ in range(WARMUP_REQUESTS):
            client.get(ours_url, headers=auth).raise_for_status()
            client.get(floor_url).raise_for_status()
        return len(answer.content)


def http_benchmark(
    database_url: str,
    redis_url: str,
    key: str,
    *,
    duration_s: int,
    connections: int,
    rounds: int = 3,
) -> dict[str, object]:
    """The token endpoint vs the bare FastAPI + Redis GET floor, under ``wrk``."""
    cached_value = _store_connection(database_url, redis_url, key)
    api_key = generate_api_key()
    provider, workspace_id, actor_id = _ids(CONNECTION)
    query = urlencode({"provider": provider, "workspace_id": workspace_id, "actor_id": actor_id})
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="oauthvault-http-")))
        config = workdir / "oauthvault.toml"
        config.write_text(
            "[service]\n"
            'public_url = "http://127.0.0.1:8000"\n\n'
            "[[api_keys]]\n"
            'name = "bench"\n'
            f'sha256 = "{hash_api_key(api_key)}"\n'
        )
        env = {
            **os.environ,
            http_apps.CONFIG_ENV: str(config),
            http_apps.DATABASE_ENV: database_url,
            http_apps.REDIS_ENV: redis_url,
            http_apps.KEY_ENV: key,
        }
        env.pop("OAUTHVAULT_PUBLIC_URL", None)  # the config file decides
        ours = stack.enter_context(serve("oauthvault", "oauthvault_app", env, workdir))
        floor = stack.enter_context(serve("floor", "floor_app", env, workdir))
        ours_url = f"{ours.base_url}/v1/connections/token?{query}"
        floor_url = f"{floor.base_url}{http_apps.FLOOR_PATH}?{query}"
        body_bytes = _verify_and_warm(ours_url, floor_url, api_key)

        ours_rounds: list[WrkResult] = []
        floor_rounds: list[WrkResult] = []
        for _ in range(rounds):
            floor_rounds.append(
                run_wrk(floor_url, duration_s=duration_s, connections=connections, headers={})
            )
            ours_rounds.append(
                run_wrk(
                    ours_url,
                    duration_s=duration_s,
                    connections=connections,
                    headers={"Authorization": f"Bearer {api_key}"},
                )
            )
            for server in (ours, floor):
                if server.process.poll() is not None:
                    raise RuntimeError(f"{server.name} died under load:\n{server.output()}")

    ours_stats, floor_stats = _median(ours_rounds), _median(floor_rounds)
    return {
        "name": "GET /v1/connections/token (Redis cache hit)",
        "floor_name": "bare FastAPI route: one redis.asyncio GET, same value size, JSON body",
        "ours": ours_stats,
        "floor": floor_stats,
        "rps_ratio": round(ours_stats["requests_per_s"] / floor_stats["requests_per_s"], 3),
        "p50_ratio": round(ours_stats["p50_ms"] / floor_stats["p50_ms"], 3),
        "rounds": {
            "ours": [vars(r) for r in ours_rounds],
            "floor": [vars(r) for r in floor_rounds],
        },
        "settings": {
            "server": "uvicorn " + " ".join(UVICORN_SETTINGS),
            "load": f"wrk -t1 -c{connections} -d{duration_s}s --latency (keep-alive)",
            "duration_s": duration_s,
            "connections": connections,
            "rounds": rounds,
            "order": "floor then ours, each round",
            "cached_value_bytes": len(cached_value),
            "response_body_bytes": body_bytes,
        },
    }
