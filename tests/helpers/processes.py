"""``oauthvault serve`` and ``oauthvault worker`` as real processes, for the tests that stop,
kill or run several of them."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import IO

import httpx

__all__ = ["start_serve", "start_worker", "stop"]

# Each process's stderr goes to a file, never a pipe: a pipe nobody reads fills up (64 KiB of
# access log) and then blocks the process's next log line, and with it the whole service.
_LOGS: dict[int, IO[bytes]] = {}


def _log_of(process: subprocess.Popen[bytes]) -> str:
    log = _LOGS.get(process.pid)
    if log is None:
        return ""
    log.seek(0)
    return log.read().decode(errors="replace")


def _spawn(args: list[str], settings: Mapping[str, str]) -> subprocess.Popen[bytes]:
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-m", "oauthvault", *args],
        env=_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    _LOGS[process.pid] = log
    return process


def _env(settings: Mapping[str, str]) -> dict[str, str]:
    # Only what the process needs, so the runner's own OAUTHVAULT_* never leak in.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **settings}


def start_serve(
    port: int, settings: Mapping[str, str], *, timeout: float = 20.0
) -> subprocess.Popen[bytes]:
    """``oauthvault serve --port PORT`` with ``settings`` as its environment, once it
    answers ``/healthz``. :func:`stop` returns what it logged."""
    process = _spawn(["serve", "--port", str(port)], settings)
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError(
                    f"serve exited with {process.returncode}: {_log_of(process)[-2000:]}"
                ) from None
            if time.monotonic() > deadline:
                stop(process)
                raise RuntimeError("serve did not start") from None
            time.sleep(0.1)  # polls the server process until it listens


def start_worker(settings: Mapping[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``oauthvault worker ARGS`` with ``settings`` as its environment."""
    return _spawn(["worker", *args], settings)


def stop(process: subprocess.Popen[bytes], *, kill: bool = False) -> str:
    """Stop ``process`` (SIGTERM, or SIGKILL with ``kill``) and return what it logged."""
    if process.poll() is None:
        if kill:
            process.kill()
        else:
            process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    logged = _log_of(process)
    log = _LOGS.pop(process.pid, None)
    if log is not None:
        log.close()
    return logged
