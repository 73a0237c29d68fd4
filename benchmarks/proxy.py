"""The API proxy benchmark: ``GET /v1/proxy/items`` next to a bare reverse proxy of the same
shape and the direct call, then a large body streamed through, the service's memory watched.

Four ``python -m uvicorn --factory`` processes, the HTTP benchmark's settings (one worker,
asyncio loop, h11, no access log), each on a free 127.0.0.1 port:

* the upstream (``proxy_apps.upstream``): the provider API, raw ASGI;
* the bare proxy (``proxy_apps.bare_proxy_app``): Starlette + one shared
  ``httpx.AsyncClient``, streaming both ways, no auth logic: the floor;
* the service (``http_apps.oauthvault_app``), its ``[credentials.openai]`` ``api_base_url``
  the upstream's, an OpenAI API key stored for the measured connection (``verify: false``);
  Redis and the local cache on, as shipped (auditing on).

``wrk`` (one thread, keep-alive, the same connections and duration for all three) loads
direct, bare, then ours, for ``rounds`` rounds; every figure is the median over rounds. Then
``big_mib`` MiB are fetched through each (``curl`` when installed, else httpx), while the
server process's ``VmRSS`` (``/proc/<pid>/status``) is sampled every 20 ms.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from benchmarks import http_apps, proxy_apps
from benchmarks.http import (
    UVICORN_SETTINGS,
    Server,
    WrkResult,
    _median,
    run_wrk,
    serve,
)
from oauthvault.service.apikeys import generate_api_key, hash_api_key

PROVIDER = "openai"
WORKSPACE = "ws_proxy_bench"
ACTOR = "user_proxy_bench"
CREDENTIAL = "sk-" + "P" * 48
CONNECTION_HEADERS = {
    "Oauthvault-Provider": PROVIDER,
    "Oauthvault-Workspace-Id": WORKSPACE,
    "Oauthvault-Actor-Id": ACTOR,
}
WARMUP_REQUESTS = 200
RSS_SAMPLE_S = 0.02
P50_TARGET = 1.15  # proxied p50 / bare proxy p50, at most
RPS_TARGET = 0.90  # proxied requests/s / bare proxy requests/s, at least
RSS_GROWTH_TARGET_MIB = 50.0  # the service's resident memory while a large body streams
MIB = proxy_apps.MIB


def rss_bytes(pid: int) -> int | None:
    """The process's resident set (``VmRSS``), or ``None`` where there is no ``/proc``."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process has used (``/proc/<pid>/stat``), or ``None``."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Samples a process's ``VmRSS`` in a thread until stopped; keeps the largest."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = rss_bytes(pid)
        self.peak = self.before
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_S):
            value = rss_bytes(self.pid)
            if value is not None:
                self.samples += 1
                self.peak = value if self.peak is None else max(self.peak, value)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        value = rss_bytes(self.pid)
        if value is not None and self.peak is not None:
            self.peak = max(self.peak, value)

    def as_dict(self) -> dict[str, object]:
        if self.before is None or self.peak is None:
            return {"rss_before_mib": None, "rss_peak_mib": None, "rss_growth_mib": None}
        return {
            "rss_before_mib": round(self.before / MIB, 1),
            "rss_peak_mib": round(self.peak / MIB, 1),
            "rss_growth_mib": round((self.peak - self.before) / MIB, 1),
            "rss_samples": self.samples,
        }


def _mib(value: int | None) -> float | None:
    return None if value is None else round(value / MIB, 1)


def fetch_big(url: str, headers: dict[str, str], size: int) -> float:
    """Fetch ``url`` to nowhere, checking its length; returns the seconds it took."""
    curl = shutil.which("curl")
    started = time.perf_counter()
    if curl is not None:
        command = [curl, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        done = subprocess.run(
            [*command, url], capture_output=True, text=True, check=False, timeout=600
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"curl failed ({done.returncode}): {done.stderr}")
        status, received = done.stdout.split()
        if status != "200" or int(received) != size:
            raise RuntimeError(f"{url}: {status}, {received} of {size} bytes")
        return seconds
    received_bytes = 0
    with (
        httpx.Client(timeout=120) as client,
        client.stream("GET", url, headers=headers) as answer,
    ):
        if answer.status_code != 200:
            raise RuntimeError(f"{url}: {answer.status_code}: {answer.read()!r}")
        for chunk in answer.iter_raw(1 << 20):
            received_bytes += len(chunk)
    seconds = time.perf_counter() - started
    if received_bytes != size:
        raise RuntimeError(f"{url}: {received_bytes} of {size} bytes")
    return seconds


def _store_credential(ours: Server, api_key: str) -> None:
    with httpx.Client(base_url=ours.base_url, timeout=30) as client:
        stored = client.put(
            "/v1/credentials",
            headers={"Authorization": f"Bearer {api_key}"},
            json={
                "provider": PROVIDER,
                "workspace_id": WORKSPACE,
                "actor_id": ACTOR,
                "credentials": {"api_key": CREDENTIAL},
                "verify": False,
            },
        )
        if stored.status_code != 201:
            raise RuntimeError(f"storing the credential: {stored.status_code} {stored.text}")


def _verify_and_warm(urls: dict[str, str], headers: dict[str, dict[str, str]]) -> None:
    """Every side answers the upstream's body (ours with no vault error) before any load."""
    with httpx.Client(timeout=10) as client:
        for side, url in urls.items():
            answer = client.get(url, headers=headers[side])
            if answer.status_code != 200 or answer.content != proxy_apps.ITEMS_BODY:
                raise RuntimeError(f"{side} answered {answer.status_code}: {answer.text}")
            if "oauthvault-error" in answer.headers:
                raise RuntimeError(f"{side}: {answer.headers['oauthvault-error']}")
        for _ in range(WARMUP_REQUESTS):
            for side, url in urls.items():
                client.get(url, headers=headers[side]).raise_for_status()


def proxy_benchmark(
    database_url: str,
    redis_url: str,
    key: str,
    *,
    duration_s: int,
    connections: int,
    rounds: int,
    big_mib: int,
) -> dict[str, object]:
    """The API proxy vs a bare streaming reverse proxy and the direct call (see the module
    docstring)."""
    api_key = generate_api_key()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="oauthvault-proxy-")))
        env = {**os.environ}
        env.pop("OAUTHVAULT_PUBLIC_URL", None)  # the config file decides
        upstream = stack.enter_context(
            serve("upstream", "benchmarks.proxy_apps:upstream", env, workdir)
        )
        api_base = f"{upstream.base_url}/api"
        config = workdir / "oauthvault.toml"
        config.write_text(
            "[service]\n"
            'public_url = "http://127.0.0.1:8000"\n\n'
            "[[api_keys]]\n"
            'name = "bench"\n'
            f'sha256 = "{hash_api_key(api_key)}"\n\n'
            f"[credentials.{PROVIDER}]\n"
            f'api_base_url = "{api_base}"\n'
        )
        env.update(
            {
                http_apps.CONFIG_ENV: str(config),
                http_apps.DATABASE_ENV: database_url,
                http_apps.REDIS_ENV: redis_url,
                http_apps.KEY_ENV: key,
                proxy_apps.UPSTREAM_ENV: api_base,
            }
        )
        bare = stack.enter_context(
            serve("bare", "benchmarks.proxy_apps:bare_proxy_app", env, workdir)
        )
        ours = stack.enter_context(serve("oauthvault", "oauthvault_app", env, workdir))
        servers = {"direct": upstream, "bare": bare, "ours": ours}
        _store_credential(ours, api_key)
        caller = {"Authorization": f"Bearer {api_key}", **CONNECTION_HEADERS}
        headers = {
            "direct": {"Authorization": f"Bearer {CREDENTIAL}"},
            "bare": caller,  # the same request as ours (the bare proxy ignores what it names)
            "ours": caller,
        }
        urls = {
            "direct": f"{api_base}/items",
            "bare": f"{bare.base_url}{proxy_apps.BARE_PREFIX}items",
            "ours": f"{ours.base_url}/v1/proxy/items",
        }
        rss_at_start = {side: rss_bytes(server.process.pid) for side, server in servers.items()}
        _verify_and_warm(urls, headers)

        measured: dict[str, list[WrkResult]] = {side: [] for side in urls}
        cpu_us: dict[str, list[float]] = {side: [] for side in urls}  # server CPU per request
        for _ in range(rounds):
            for side in ("direct", "bare", "ours"):
                pid = servers[side].process.pid
                cpu_before = cpu_seconds(pid)
                result = run_wrk(
                    urls[side],
                    duration_s=duration_s,
                    connections=connections,
                    headers=headers[side],
                )
                cpu_after = cpu_seconds(pid)
                measured[side].append(result)
                if cpu_before is not None and cpu_after is not None and result.requests:
                    cpu_us[side].append(1e6 * (cpu_after - cpu_before) / result.requests)
                for name, server in servers.items():
                    if server.process.poll() is not None:
                        raise RuntimeError(f"{name} died under load:\n{server.output()}")

        # The large body: through each side, the serving process's memory watched.
        size = big_mib * MIB
        big_urls = {
            "direct": f"{api_base}/big/{big_mib}",
            "bare": f"{bare.base_url}{proxy_apps.BARE_PREFIX}big/{big_mib}",
            "ours": f"{ours.base_url}/v1/proxy/big/{big_mib}",
        }
        stream: dict[str, object] = {"mib": big_mib}
        for side in ("direct", "bare", "ours"):
            with RssSampler(servers[side].process.pid) as sampler:
                seconds = fetch_big(big_urls[side], headers[side], size)
            stream[side] = {
                "seconds": round(seconds, 3),
                "mib_per_s": round(big_mib / seconds, 1),
                **sampler.as_dict(),
            }
        rss_at_end = {side: rss_bytes(server.process.pid) for side, server in servers.items()}

    stats: dict[str, dict[str, Any]] = {side: _median(r) for side, r in measured.items()}
    for side, values in cpu_us.items():
        stats[side]["server_cpu_us_per_request"] = (
            round(statistics.median(values), 1) if values else None
        )
    ours_stats, bare_stats, direct_stats = stats["ours"], stats["bare"], stats["direct"]
    growth = stream["ours"]["rss_growth_mib"]  # type: ignore[index]
    return {
        "name": "GET /v1/proxy/items (OpenAI API key, Redis + local cache)",
        "floor_name": "bare Starlette + shared httpx.AsyncClient streaming reverse proxy",
        "ours": ours_stats,
        "bare": bare_stats,
        "direct": direct_stats,
        "p50_ratio": round(ours_stats["p50_ms"] / bare_stats["p50_ms"], 3),
        "rps_ratio": round(ours_stats["requests_per_s"] / bare_stats["requests_per_s"], 3),
        "cpu_ratio": (
            None
            if not (cpu_us["ours"] and cpu_us["bare"])
            else round(
                ours_stats["server_cpu_us_per_request"] / bare_stats["server_cpu_us_per_request"], 3
            )
        ),
        "bare_vs_direct_p50_ratio": round(bare_stats["p50_ms"] / direct_stats["p50_ms"], 3),
        "targets": {
            "p50_ratio_max": P50_TARGET,
            "rps_ratio_min": RPS_TARGET,
            "rss_growth_mib_max": RSS_GROWTH_TARGET_MIB,
        },
        "stream": stream,
        "rss_growth_mib": growth,
        "rss_mib": {
            side: {"at_start": _mib(rss_at_start[side]), "at_end": _mib(rss_at_end[side])}
            for side in servers
        },
        "rounds": {side: [vars(r) for r in results] for side, results in measured.items()},
        "settings": {
            "server": "uvicorn " + " ".join(UVICORN_SETTINGS),
            "load": f"wrk -t1 -c{connections} -d{duration_s}s --latency (keep-alive)",
            "duration_s": duration_s,
            "connections": connections,
            "rounds": rounds,
            "order": "direct, bare, ours, each round",
            "response_body_bytes": len(proxy_apps.ITEMS_BODY),
            "big_body_client": "curl" if shutil.which("curl") else "httpx",
        },
    }
