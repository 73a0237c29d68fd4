"""The benchmark command works (short mode); speed itself is never asserted in tests."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.once  # scripts/test runs it on the first Python only: it measures, not behaves
def test_quick_benchmark_run_writes_every_comparison(tmp_path, _redis_checked, postgres_url):
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)],
        cwd=ROOT,
        # The run's own Redis database (it flushes it), not the benchmarks' default one.
        env={**os.environ, "OAUTHVAULT_BENCH_REDIS_URL": _redis_checked},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(output.read_text())
    names = {row["name"] for row in report["comparisons"]}
    assert {
        "local-cache get_tokens",
        "local-cache get_access_token",
        "cached get_tokens",
        "get_access_token (no refresh)",
        "cache-miss get_tokens",
        "db-only get_tokens (PostgreSQL)",
        "store_tokens",
        "delete_tokens",
        "sqlite get_tokens",
        "async cached get_tokens",
        "async store_tokens",
        "async cache-miss get_tokens",
    } <= names
    for row in report["comparisons"]:
        assert row["ours"]["p50_us"] > 0
        assert row["floor_stats"]["p50_us"] > 0
    assert report["propagation"]["changes"] == 100 and report["propagation"]["p99_ms"] > 0
    assert len(report["scale"]) == 2
    # The worker's due scan reads the due index alone (schema 0008), even on the large set.
    assert "Index Only Scan on idx_oauth_tokens_due" in report["scale"][0]["due_scan"]["plan"]
    assert report["memory"]["redis_memory_usage_per_connection"] > 0
    assert report["http"]["rps_ratio"] > 0
    proxy = report["proxy"]
    assert proxy["p50_ratio"] > 0 and proxy["rps_ratio"] > 0
    assert proxy["direct"]["requests_per_s"] > 0 and proxy["bare"]["requests_per_s"] > 0
    # 64 MiB through the service's proxy, its resident memory sampled (Linux: /proc).
    assert proxy["stream"]["mib"] == 64 and proxy["stream"]["ours"]["mib_per_s"] > 0
    if Path("/proc/self/status").exists():
        assert proxy["rss_growth_mib"] is not None
    assert "ratio" in result.stdout
