"""``oauthvault serve`` and ``oauthvault worker`` as real processes, for the tests that stop,
kill or run several of them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping

import httpx

__all__ = ["start_serve", "start_worker", "stop"]


def _env(settings: Mapping[str, str]) -> dict[str, str]:
    # Only what the process needs, so the runner's own OAUTHVAULT_* never leak in.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **settings}


def start_serve(
    port: int, settings: Mapping[str, str], *, timeout: float = 20.0
) -> subprocess.Popen[bytes]:
    """``oauthvault serve --port PORT`` with ``settings`` as its environment, once it
    answers ``/healthz``. stderr is a pipe (read it after :func:`stop`)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "oauthvault", "serve", "--port", str(port)],
        env=_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError(
                    f"serve exited with {process.returncode}: "
                    + (process.stderr.read().decode()[-2000:] if process.stderr else "")
                ) from None
            if time.monotonic() > deadline:
                stop(process)
                raise RuntimeError("serve did not start") from None
            time.sleep(0.1)  # polls the server process until it listens


def start_worker(settings: Mapping[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``oauthvault worker ARGS`` with ``settings`` as its environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "oauthvault", "worker", *args],
        env=_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop(process: subprocess.Popen[bytes], *, kill: bool = False) -> str:
    """Stop ``process`` (SIGTERM, or SIGKILL with ``kill``) and return its stderr."""
    if process.poll() is None:
        if kill:
            process.kill()
        else:
            process.terminate()
    try:
        _, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate(timeout=10)
    return (stderr or b"").decode(errors="replace")
