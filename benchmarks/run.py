"""Run every benchmark and print oauthvault next to its floor; write JSON.

Usage: python -m benchmarks [--quick] [--only NAME ...] [--output PATH]

The floors are what the operation cannot avoid: the same Redis commands and SQL round
trips with the same payload sizes, issued through bare redis-py / psycopg / sqlite3.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
import redis.asyncio as aioredis

from benchmarks.dataset import (
    ACCESS,
    REFRESH,
    SCOPE,
    floor_params,
    load_connections,
    plaintext_record_size,
    sealed_sample,
)
from benchmarks.http import http_benchmark
from benchmarks.propagation import propagation
from benchmarks.proxy import P50_TARGET, RPS_TARGET, RSS_GROWTH_TARGET_MIB, proxy_benchmark
from benchmarks.timing import Comparison, compare, compare_async
from oauthvault import AsyncOAuthTokenCache, KeyRing, OAuthTokenCache, TokenKey, generate_key
from oauthvault.cache import cache_key
from oauthvault.storage.location import parse_database_url
from oauthvault.storage.migrations import upgrade
from oauthvault.storage.postgres_sql import EXPIRING

ADMIN_URL = os.environ.get(
    "OAUTHVAULT_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("OAUTHVAULT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
RESULTS = Path(__file__).parent / "results" / "latest.json"

# The floors use a table of the same shape without anything of ours (no version
# sequence, no change-feed trigger): what a bare write costs.
FLOOR_TABLE = "CREATE TABLE floor_tokens (LIKE oauth_tokens INCLUDING ALL)"
SELECT = (
    "SELECT access_token_encrypted, refresh_token_encrypted, key_id, expires_at, scope"
    " FROM floor_tokens WHERE provider = %s AND workspace_id = %s AND actor_id = %s"
)
UPSERT = """
INSERT INTO floor_tokens (id, provider, workspace_id, actor_id, access_token_encrypted,
    refresh_token_encrypted, key_id, expires_at, scope)
VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (provider, workspace_id, actor_id) DO UPDATE SET
    access_token_encrypted = EXCLUDED.access_token_encrypted,
    refresh_token_encrypted = EXCLUDED.refresh_token_encrypted,
    key_id = EXCLUDED.key_id, expires_at = EXCLUDED.expires_at, scope = EXCLUDED.scope,
    updated_at = now()
"""
DELETE = "DELETE FROM floor_tokens WHERE provider = %s AND workspace_id = %s AND actor_id = %s"

TARGETS = {
    "local-cache get_tokens": 0.10,
    "local-cache get_access_token": 0.10,
    "cached get_tokens": 1.10,
    "cache-miss get_tokens": 1.25,
    "store_tokens": 1.30,
    "delete_tokens": 1.30,
    "sqlite get_tokens": 1.5,
    "db-only get_tokens (PostgreSQL)": 1.25,
    "get_access_token (no refresh)": 1.05,
    "async cached get_tokens": 1.10,
    "async cache-miss get_tokens": 1.25,
    "async store_tokens": 1.30,
}


@dataclass
class Mode:
    count: int  # calls per block
    repeats: int  # blocks per side
    connections: int  # the "1,000 stored connections" dataset
    large: int  # the "1,000,000 stored connections" dataset
    http_duration_s: int  # seconds of wrk load per side and round
    http_rounds: int  # rounds, each floor then ours
    http_connections: int  # wrk keep-alive connections (the proxy benchmark's too)
    proxy_big_mib: int  # the body streamed through the API proxy, memory watched


QUICK = Mode(
    count=200,
    repeats=3,
    connections=1_000,
    large=20_000,
    http_duration_s=2,
    http_rounds=3,
    http_connections=8,
    proxy_big_mib=64,
)
FULL = Mode(
    count=1_000,
    repeats=9,
    connections=1_000,
    large=1_000_000,
    http_duration_s=10,
    http_rounds=3,
    http_connections=32,
    proxy_big_mib=1024,
)
HTTP_TARGET = 1.0  # the token endpoint's requests/s, as a share of the floor's


class Bench:
    """The services and the data one run measures against."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self.key = generate_key()
        self.ring = KeyRing.from_text(self.key)
        self.database_url = self._fresh_database()
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.redis.flushdb()
        # The Redis layer alone (the rows measured before the local cache existed); the
        # default, with the local cache in front, is made for its own rows only (its change
        # feed would otherwise hear, and spend time on, every write the other rows make).
        self.vault = OAuthTokenCache(self.database_url, REDIS_URL, self.key, local_cache=False)
        self.sql = psycopg.connect(self.database_url, autocommit=True, prepare_threshold=0)
        self.sql.execute(FLOOR_TABLE)
        self.keys = [
            TokenKey("google", f"ws_{index % 100:04d}", f"user_{index:07d}")
            for index in range(mode.connections)
        ]
        self.floor_keys = [
            TokenKey("floor", f"ws_{index % 100:04d}", f"user_{index:07d}")
            for index in range(mode.connections)
        ]
        for key in self.keys:
            self.vault.store_tokens(
                key.provider, key.workspace_id, key.actor_id, ACCESS, REFRESH, 3600, SCOPE
            )
        self.cache_value = self.redis.get(cache_key(self.keys[0]))
        assert self.cache_value is not None
        self.sealed = sealed_sample(self.ring)
        for key in self.floor_keys:
            self.sql.execute(UPSERT, floor_params(key, self.sealed), prepare=True)
            self.redis.set(cache_key(key), self.cache_value, ex=3600)

    def _fresh_database(self) -> str:
        name = "oauthvault_bench"
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        upgrade(parse_database_url(url))
        return url

    def close(self) -> None:
        self.vault.close()
        self.sql.close()
        self.redis.close()


def _compare(
    bench: Bench,
    name: str,
    floor_name: str,
    ours: Callable[[int], object],
    floor: Callable[[int], object],
    **kwargs: object,
) -> Comparison:
    count = int(kwargs.pop("count", bench.mode.count))  # type: ignore[call-overload]
    return compare(name, floor_name, ours, floor, count=count, repeats=bench.mode.repeats, **kwargs)  # type: ignore[arg-type]


def cached_get(bench: Bench, label: str = "") -> Comparison:
    keys, floor_names = bench.keys, [cache_key(k) for k in bench.floor_keys]
    n = len(keys)
    for key in keys:  # warm
        bench.vault.get_tokens(key.provider, key.workspace_id, key.actor_id)
    return _compare(
        bench,
        "cached get_tokens" + label,
        "redis GET (same value size)",
        lambda i: bench.vault.get_tokens(*_ids(keys[i % n])),
        lambda i: bench.redis.get(floor_names[i % n]),
    )


def local_get(bench: Bench) -> list[Comparison]:
    """The local cache: no network at all on a hit (records stay sealed; opened per call)."""
    with OAuthTokenCache(bench.database_url, REDIS_URL, bench.key) as vault:
        return _local_rows(bench, vault)


def _local_rows(bench: Bench, vault: OAuthTokenCache) -> list[Comparison]:
    keys = bench.keys
    floor_names = [cache_key(k) for k in bench.floor_keys]
    n = len(keys)
    deadline = time.monotonic() + 10
    while not vault.cache_info().local_live:
        if time.monotonic() > deadline:
            raise RuntimeError("the change feed did not come up")
        time.sleep(0.01)
    for key in keys:  # warm
        vault.get_tokens(*_ids(key))
    return [
        _compare(
            bench,
            "local-cache get_tokens",
            "redis GET (same value size)",
            lambda i: vault.get_tokens(*_ids(keys[i % n])),
            lambda i: bench.redis.get(floor_names[i % n]),
        ),
        _compare(
            bench,
            "local-cache get_access_token",
            "redis GET (same value size)",
            lambda i: vault.get_access_token(*_ids(keys[i % n])),
            lambda i: bench.redis.get(floor_names[i % n]),
        ),
    ]


def access_token(bench: Bench) -> Comparison:
    keys = bench.keys
    n = len(keys)
    for key in keys:  # warm
        bench.vault.get_tokens(*_ids(key))
    return _compare(
        bench,
        "get_access_token (no refresh)",
        "cached get_tokens",
        lambda i: bench.vault.get_access_token(*_ids(keys[i % n])),
        lambda i: bench.vault.get_tokens(*_ids(keys[i % n])),
    )


def miss_get(bench: Bench, label: str = "") -> Comparison:
    keys, floors = bench.keys, bench.floor_keys
    floor_names = [cache_key(k) for k in floors]
    params = [_ids(k) for k in floors]
    value = bench.cache_value

    def floor(i: int) -> None:
        bench.redis.get(floor_names[i])
        bench.sql.execute(SELECT, params[i], prepare=True).fetchone()
        bench.redis.set(floor_names[i], value, ex=3600)

    return _compare(
        bench,
        "cache-miss get_tokens" + label,
        "GET + prepared SELECT + SET EX",
        lambda i: bench.vault.get_tokens(*_ids(keys[i])),
        floor,
        count=min(bench.mode.count, len(keys)),
        # Only the keys read: a FLUSHDB of ten million keys takes longer than a socket waits.
        before_block=lambda: bench.redis.delete(
            *(cache_key(k) for k in keys[: bench.mode.count]), *floor_names[: bench.mode.count]
        ),
    )


def db_only_get(bench: Bench) -> Comparison:
    keys, floors = bench.keys, bench.floor_keys
    n = len(keys)
    vault = OAuthTokenCache(bench.database_url, "", bench.key, local_cache=False)
    try:
        return _compare(
            bench,
            "db-only get_tokens (PostgreSQL)",
            "prepared SELECT by key",
            lambda i: vault.get_tokens(*_ids(keys[i % n])),
            lambda i: bench.sql.execute(SELECT, _ids(floors[i % n]), prepare=True).fetchone(),
        )
    finally:
        vault.close()


def store(bench: Bench) -> Comparison:
    keys, floors = bench.keys, bench.floor_keys
    floor_names = [cache_key(k) for k in floors]
    n = len(keys)
    value = bench.cache_value

    def floor(i: int) -> None:
        bench.sql.execute(UPSERT, floor_params(floors[i % n], bench.sealed), prepare=True)
        bench.redis.set(floor_names[i % n], value, ex=3600)

    return _compare(
        bench,
        "store_tokens",
        "prepared upsert + SET EX",
        lambda i: bench.vault.store_tokens(*_ids(keys[i % n]), ACCESS, REFRESH, 3600, SCOPE),
        floor,
    )


def delete(bench: Bench) -> Comparison:
    keys, floors = bench.keys, bench.floor_keys
    floor_names = [cache_key(k) for k in floors]
    count = min(bench.mode.count, len(keys))

    def refill() -> None:
        for key, floor_key, name in zip(keys[:count], floors[:count], floor_names, strict=False):
            bench.vault.store_tokens(*_ids(key), ACCESS, REFRESH, 3600, SCOPE)
            bench.sql.execute(UPSERT, floor_params(floor_key, bench.sealed), prepare=True)
            bench.redis.set(name, bench.cache_value, ex=3600)

    def floor(i: int) -> None:
        bench.sql.execute(DELETE, _ids(floors[i]), prepare=True)
        bench.redis.delete(floor_names[i])

    try:
        return _compare(
            bench,
            "delete_tokens",
            "prepared DELETE + DEL",
            lambda i: bench.vault.delete_tokens(*_ids(keys[i])),
            floor,
            count=count,
            before_block=refill,
        )
    finally:
        refill()  # later benchmarks expect every connection to be stored


def sqlite_get(bench: Bench) -> Comparison:
    from oauthvault.crypto.envelope import NONCE_SIZE

    directory = tempfile.mkdtemp(prefix="oauthvault-bench-")
    path = Path(directory) / "bench.db"
    vault = OAuthTokenCache(f"sqlite:///{path}", "", bench.key, local_cache=False)
    keys = bench.keys
    n = len(keys)
    for key in keys:
        vault.store_tokens(*_ids(key), ACCESS, REFRESH, 3600, SCOPE)
    bare = sqlite3.connect(path, isolation_level=None)
    select = SELECT.replace("%s", "?").replace("floor_tokens", "oauth_tokens")
    aead = bench.ring.primary.subkeys["token-row"]
    sealed = bench.sealed.access_raw
    nonce, body = sealed[5 : 5 + NONCE_SIZE], sealed[5 + NONCE_SIZE :]
    ad = bench.sealed.access_ad

    def floor(i: int) -> None:
        bare.execute(select, _ids(keys[i % n])).fetchone()
        aead.decrypt(nonce, body, ad)

    try:
        return _compare(
            bench,
            "sqlite get_tokens",
            "sqlite3 SELECT + 1 AES-GCM decrypt",
            lambda i: vault.get_tokens(*_ids(keys[i % n])),
            floor,
        )
    finally:
        bare.close()
        vault.close()


def async_benchmarks(bench: Bench) -> list[Comparison]:
    async def scenario() -> list[Comparison]:
        keys, floors = bench.keys, bench.floor_keys
        floor_names = [cache_key(k) for k in floors]
        n = len(keys)
        mode = bench.mode
        value = bench.cache_value
        client = aioredis.Redis.from_url(REDIS_URL)
        sql = await psycopg.AsyncConnection.connect(
            bench.database_url, autocommit=True, prepare_threshold=0
        )
        results = []
        async with AsyncOAuthTokenCache(
            bench.database_url, REDIS_URL, bench.key, local_cache=False
        ) as vault:
            for key in keys:
                await vault.get_tokens(*_ids(key))
            results.append(
                await compare_async(
                    "async cached get_tokens",
                    "redis.asyncio GET",
                    lambda i: vault.get_tokens(*_ids(keys[i % n])),
                    lambda i: client.get(floor_names[i % n]),
                    count=mode.count,
                    repeats=mode.repeats,
                )
            )

            async def floor_store(i: int) -> None:
                await sql.execute(UPSERT, floor_params(floors[i % n], bench.sealed), prepare=True)
                await client.set(floor_names[i % n], value, ex=3600)

            results.append(
                await compare_async(
                    "async store_tokens",
                    "async upsert + SET EX",
                    lambda i: vault.store_tokens(*_ids(keys[i % n]), ACCESS, REFRESH, 3600, SCOPE),
                    floor_store,
                    count=mode.count,
                    repeats=mode.repeats,
                )
            )

            async def floor_miss(i: int) -> None:
                await client.get(floor_names[i])
                cursor = await sql.execute(SELECT, _ids(floors[i]), prepare=True)
                await cursor.fetchone()
                await client.set(floor_names[i], value, ex=3600)

            results.append(
                await compare_async(
                    "async cache-miss get_tokens",
                    "async GET + SELECT + SET EX",
                    lambda i: vault.get_tokens(*_ids(keys[i])),
                    floor_miss,
                    count=min(mode.count, n),
                    repeats=mode.repeats,
                    before_block=client.flushdb,
                )
            )
        await sql.close()
        await client.aclose()
        return results

    return asyncio.run(scenario())


def _ids(key: TokenKey) -> tuple[str, str, str]:
    return (key.provider, key.workspace_id, key.actor_id)


def memory(bench: Bench) -> dict[str, object]:
    name = cache_key(bench.keys[0])
    bench.vault.get_tokens(*_ids(bench.keys[0]))  # make sure it is cached
    ours = bench.redis.memory_usage(name) or 0
    plain = plaintext_record_size()
    bench.redis.set("bench:plaintext-record", b"x" * plain)
    baseline = bench.redis.memory_usage("bench:plaintext-record") or 0
    return {
        "redis_memory_usage_per_connection": ours,
        "plaintext_record_bytes": plain,
        "ratio_to_plaintext_record": round(ours / plain, 3),
        "memory_usage_of_plaintext_record_stored_as_is": baseline,
    }


def due_scan(bench: Bench) -> dict[str, object]:
    """The worker's "what is due" query at this size: its plan and time (EXPLAIN ANALYZE)."""
    before = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)  # every row is due
    plan = bench.sql.execute(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + EXPIRING, (before, 100)
    ).fetchone()[0][0]
    nodes = []
    node = plan["Plan"]
    while True:
        nodes.append(
            node["Node Type"] + (f" on {node['Index Name']}" if "Index Name" in node else "")
        )
        if not node.get("Plans"):
            break
        node = node["Plans"][0]
    return {
        "plan": " -> ".join(nodes),
        "execution_ms": plan["Execution Time"],
        "heap_fetches": node.get("Heap Fetches"),
    }


def scale(
    bench: Bench, small: dict[str, Comparison], sizes: tuple[int, ...]
) -> list[dict[str, object]]:
    rows = []
    loaded_so_far = 0
    for size in sizes:
        started = time.monotonic()
        large_keys = load_connections(bench.sql, bench.redis, bench.ring, size, first=loaded_so_far)
        loaded_so_far = size
        load_s = time.monotonic() - started
        saved = bench.keys
        bench.keys = large_keys  # a spread-out sample of the large dataset
        try:
            cached = cached_get(bench, f" @{size:,}")
            miss = miss_get(bench, f" @{size:,}")
        finally:
            bench.keys = saved
        due = due_scan(bench)
        for big, label in ((cached, "cached get_tokens"), (miss, "cache-miss get_tokens")):
            base = small[label]
            rows.append(
                {
                    "name": big.name,
                    "connections": size,
                    "ours": big.ours.as_dict(),
                    "floor_stats": big.floor.as_dict(),
                    "p50_vs_small": round(big.ours.p50_us / base.ours.p50_us, 3),
                    "p50_ratio": round(big.ratio, 3),
                    "load_seconds": round(load_s, 1),
                    "due_scan": due,
                }
            )
    return rows


def machine() -> dict[str, object]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    server = redis.Redis.from_url(REDIS_URL).info("server").get("redis_version")
    with psycopg.connect(ADMIN_URL) as connection:
        pg_version = connection.info.server_version
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "redis_server": server,
        "postgresql_server": pg_version,
        "redis_py": redis.__version__,
        "psycopg": psycopg.__version__,
    }


def print_table(comparisons: list[Comparison]) -> None:
    header = f"{'operation':34} {'ours p50':>9} {'p99':>9} {'ops/s':>8}  {'floor p50':>9} {'p99':>9} {'ops/s':>8}  {'ratio':>6} {'target':>6}  floor"  # noqa: E501
    print(header)
    print("-" * len(header))
    for c in comparisons:
        target = TARGETS.get(c.name.split(" @")[0])
        mark = "" if target is None else ("ok" if c.ratio <= target else "MISS")
        print(
            f"{c.name:34} {c.ours.p50_us:9.1f} {c.ours.p99_us:9.1f} {c.ours.ops_per_s:8.0f}  "
            f"{c.floor.p50_us:9.1f} {c.floor.p99_us:9.1f} {c.floor.ops_per_s:8.0f}  "
            f"{c.ratio:6.3f} {('≤' + format(target, '.2f')) if target else '':>6} {mark:4} "
            f"{c.floor_name}"
        )


ALL = (
    "local",
    "cached",
    "access",
    "miss",
    "db",
    "store",
    "delete",
    "sqlite",
    "async",
    "scale",
    "memory",
    "propagation",
    "http",
    "proxy",
)
PROPAGATION_TARGET_MS = 50.0  # p99 of a store seen by another process's next read


def print_proxy(p: dict[str, Any]) -> None:
    print("\nAPI proxy, GET /v1/proxy/items (wrk, median over rounds):")
    for side, label in (
        ("ours", "oauthvault /v1/proxy"),
        ("bare", "bare Starlette+httpx proxy"),
        ("direct", "direct to the upstream"),
    ):
        s = p[side]
        cpu = s.get("server_cpu_us_per_request")
        print(
            f"  {label:28} {s['requests_per_s']:8.0f} req/s  p50 {s['p50_ms']:7.2f} ms"
            f"  p99 {s['p99_ms']:7.2f} ms"
            + ("" if cpu is None else f"  server CPU {cpu:7.1f} µs/request")
        )
    print(
        f"  p50 ratio (ours / bare) {p['p50_ratio']:.3f} (target ≤ {P50_TARGET:.2f})"
        f" {'ok' if p['p50_ratio'] <= P50_TARGET else 'MISS'};"
        f" throughput ratio {p['rps_ratio']:.3f} (target ≥ {RPS_TARGET:.2f})"
        f" {'ok' if p['rps_ratio'] >= RPS_TARGET else 'MISS'};"
        f" bare / direct p50 {p['bare_vs_direct_p50_ratio']:.3f}"
    )
    if p.get("cpu_ratio") is not None:
        print(f"  server CPU per request, ours / bare: {p['cpu_ratio']:.3f}")
    stream = p["stream"]
    print(f"  {stream['mib']} MiB streamed through:")
    for side in ("ours", "bare", "direct"):
        s = stream[side]
        rss = (
            ""
            if s["rss_growth_mib"] is None
            else f", server RSS {s['rss_before_mib']} -> {s['rss_peak_mib']} MiB"
            f" (+{s['rss_growth_mib']} MiB)"
        )
        print(f"    {side:7} {s['seconds']:7.2f} s, {s['mib_per_s']:7.1f} MiB/s{rss}")
    growth = p["rss_growth_mib"]
    if growth is not None:
        print(
            f"  service RSS growth {growth} MiB (target < {RSS_GROWTH_TARGET_MIB:.0f} MiB)"
            f" {'ok' if growth < RSS_GROWTH_TARGET_MIB else 'MISS'}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small smoke run (CI)")
    parser.add_argument("--only", nargs="+", choices=ALL, default=list(ALL))
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--large",
        nargs="+",
        type=int,
        metavar="N",
        help="sizes of the large dataset, ascending (default: 1,000,000; quick: 20,000)",
    )
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    bench = Bench(mode)
    comparisons: list[Comparison] = []
    small: dict[str, Comparison] = {}
    report: dict[str, object] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "settings": vars(mode),
    }
    try:
        steps: dict[str, Callable[[], object]] = {
            "cached": lambda: cached_get(bench),
            "access": lambda: access_token(bench),
            "miss": lambda: miss_get(bench),
            "db": lambda: db_only_get(bench),
            "store": lambda: store(bench),
            "delete": lambda: delete(bench),
            "sqlite": lambda: sqlite_get(bench),
        }
        for name in ALL:
            if name not in args.only:
                continue
            if name in steps:
                result = steps[name]()
                assert isinstance(result, Comparison)
                comparisons.append(result)
                small[result.name] = result
            elif name == "async":
                comparisons.extend(async_benchmarks(bench))
            elif name == "local":
                for result in local_get(bench):
                    comparisons.append(result)
                    small[result.name] = result
            elif name == "propagation":
                changes = 100 if args.quick else 1_000
                report["propagation"] = propagation(
                    bench.database_url, REDIS_URL, bench.key, changes
                )
            elif name == "memory":
                report["memory"] = memory(bench)
            elif name == "http":
                report["http"] = http_benchmark(
                    bench.database_url,
                    REDIS_URL,
                    bench.key,
                    duration_s=mode.http_duration_s,
                    connections=mode.http_connections,
                    rounds=mode.http_rounds,
                )
            elif name == "proxy":
                report["proxy"] = proxy_benchmark(
                    bench.database_url,
                    REDIS_URL,
                    bench.key,
                    duration_s=mode.http_duration_s,
                    connections=mode.http_connections,
                    rounds=mode.http_rounds,
                    big_mib=mode.proxy_big_mib,
                )
            elif name == "scale" and {"cached get_tokens", "cache-miss get_tokens"} <= set(small):
                sizes = tuple(sorted(args.large)) if args.large else (mode.large,)
                report["scale"] = scale(bench, small, sizes)
    finally:
        bench.close()
    report["comparisons"] = [c.as_dict() for c in comparisons]
    if comparisons:
        print()
        print_table(comparisons)
    if "scale" in report:
        print()
        for row in report["scale"]:  # type: ignore[attr-defined]
            print(
                f"{row['name']:34} p50 {row['ours']['p50_us']:.1f} us = "
                f"{row['p50_vs_small']:.3f}x the {mode.connections:,}-connection figure"
            )
            due = row["due_scan"]
            print(f"{'':34} due scan: {due['plan']}, {due['execution_ms']:.2f} ms")
    if "memory" in report:
        m = report["memory"]
        print(
            f"\nredis MEMORY USAGE per connection: {m['redis_memory_usage_per_connection']} B"  # type: ignore[index]
            f" for a {m['plaintext_record_bytes']} B plaintext record"  # type: ignore[index]
            f" = {m['ratio_to_plaintext_record']}x"
        )  # type: ignore[index]
    if "propagation" in report:
        p = report["propagation"]
        print(
            f"\npropagation (store in A, seen by B's next read, {p['changes']} changes):"  # type: ignore[index]
            f" p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, max {p['max_ms']} ms"  # type: ignore[index]
            f" (target p99 ≤ {PROPAGATION_TARGET_MS:.0f} ms)"
            f" {'ok' if p['p99_ms'] <= PROPAGATION_TARGET_MS else 'MISS'}"  # type: ignore[index]
        )
    if "http" in report:
        h = report["http"]
        ours, floor = h["ours"], h["floor"]  # type: ignore[index]
        print(
            f"\ntoken endpoint: {ours['requests_per_s']:.0f} req/s"
            f" (p50 {ours['p50_ms']:.2f} ms, p99 {ours['p99_ms']:.2f} ms)"
            f" vs bare FastAPI+Redis GET {floor['requests_per_s']:.0f} req/s"
            f" (p50 {floor['p50_ms']:.2f} ms, p99 {floor['p99_ms']:.2f} ms)"
            f" = {h['rps_ratio']:.2f}x (target ≥ {HTTP_TARGET:.2f})"  # type: ignore[index]
            f" {'ok' if h['rps_ratio'] >= HTTP_TARGET else 'MISS'}"  # type: ignore[index]
        )
    if "proxy" in report:
        print_proxy(report["proxy"])  # type: ignore[arg-type]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    sys.stdout.flush()
