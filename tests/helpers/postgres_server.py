"""A private PostgreSQL server (initdb + the postgres binary), for tests of database faults.

The test may stop it (fast shutdown, as ``pg_ctl stop -m fast``), restart it, or SIGKILL
its postmaster; it listens on 127.0.0.1 and a free port, with ``fsync=off``. PostgreSQL
refuses to run as root, so under root it runs as the ``postgres`` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers.net import free_port


def _bin_dir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if not versions:
        pytest.fail("PostgreSQL server binaries (initdb, postgres) are required", pytrace=False)
    return versions[0]


class PostgresServer:
    """One private cluster; :attr:`url` reaches its ``postgres`` database."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="oauthvault-pg-"))
        self.data = self.root / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.process: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = {"user": user.pw_uid, "group": user.pw_gid}
        subprocess.run(
            [self.bin / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **self._as,
        )

    def start(self, timeout: float = 30.0) -> float:
        """Start the server; returns the moment (``time.monotonic()``) it accepted a query."""
        deadline = time.monotonic() + timeout
        while True:
            self.process = subprocess.Popen(
                [
                    self.bin / "postgres",
                    "-D",
                    self.data,
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.root}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                **self._as,
            )
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break  # e.g. the shared memory of a killed postmaster's children
                try:
                    with psycopg.connect(self.url, connect_timeout=2) as connection:
                        connection.execute("SELECT 1")
                    return time.monotonic()
                except psycopg.OperationalError:
                    time.sleep(0.02)
            if time.monotonic() >= deadline:
                self.stop()
                pytest.fail("the private PostgreSQL did not start", pytrace=False)
            time.sleep(0.1)

    def stop(self, sig: signal.Signals = signal.SIGINT) -> None:
        """Stop the server: SIGINT is a fast shutdown (clients are disconnected)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL the postmaster, then wait until its backends have noticed and exited: a
        backend still alive would run (and commit) one more statement on a connection it
        already had, and the server would not be down yet."""
        children = _children(self.process.pid) if self.process is not None else []
        self.stop(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in children):
            if time.monotonic() > deadline:
                raise AssertionError(f"backends {children} outlived their postmaster by 30 s")
            time.sleep(0.01)

    def restart(self) -> float:
        self.stop()
        return self.start()

    def terminate_backends(self, database: str) -> int:
        """``pg_terminate_backend`` every other session on ``database``; how many."""
        with psycopg.connect(self.url, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchall()
        return len(rows)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (an exited one nobody reaped yet, a zombie, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
