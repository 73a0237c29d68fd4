"""A private redis-server process, for tests of Redis outages."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest
import redis

from tests.helpers.net import free_port


class RedisServer:
    """A private redis-server process that a test may stop, freeze and restart.

    Clients handed out by :meth:`client` are closed by :meth:`close`, which also stops the
    process.
    """

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is required on PATH; run scripts/test", pytrace=False)
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self._clients: list[redis.Redis] = []

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with redis.Redis(port=self.port, socket_connect_timeout=0.2) as client:
            deadline = time.monotonic() + 10
            while True:  # polls the new process until it answers
                try:
                    client.ping()
                    break
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()
            self.process = None

    def freeze(self) -> None:
        """Stop the process without closing its socket: clients hang until they time out."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        """A client of this server, closed by :meth:`close`."""
        client = redis.Redis(port=self.port)
        self._clients.append(client)
        return client

    def close(self) -> None:
        """Stop the process and close every client handed out."""
        try:
            self.stop()
        finally:
            while self._clients:
                self._clients.pop().close()
