"""A private three-master Redis Cluster on loopback (redis-server --cluster-enabled yes,
joined with redis-cli --cluster create), for the cache contract and fault tests."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis


def _cluster_ports(count: int) -> list[int]:
    """Ports free for a node and for its cluster bus (port + 10000)."""
    ports: list[int] = []
    candidate = 30000
    while len(ports) < count:
        candidate += 1
        if candidate > 40000:
            raise RuntimeError("no free ports for a Redis Cluster")
        if all(_free(port) for port in (candidate, candidate + 10000)):
            ports.append(candidate)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RedisCluster:
    """Three masters (no replicas); :meth:`kill` and :meth:`freeze` one of them."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            pytest.fail("redis-server and redis-cli are required; run scripts/test", pytrace=False)
        self.binary, self.cli = binary, cli
        self.directory = directory
        self.ports = _cluster_ports(masters)
        self.url = f"redis://127.0.0.1:{self.ports[0]}/0"
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        for port in self.ports:
            self.processes[port] = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    f"nodes-{port}.conf",
                    "--cluster-node-timeout",
                    "2000",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                cwd=self.directory,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for port in self.ports:
            self._wait(lambda client: client.ping(), port)
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for port in self.ports:
            self._wait(lambda client: client.cluster("info")["cluster_state"] == "ok", port)

    def _wait(self, ready: object, port: int) -> None:
        deadline = time.monotonic() + 30
        with redis.Redis(port=port, socket_connect_timeout=0.2, decode_responses=True) as client:
            while True:  # polls the node until it is ready
                try:
                    if ready(client):  # type: ignore[operator]
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Redis Cluster node {port} did not become ready")
                time.sleep(0.05)

    def flush(self) -> None:
        for port, process in self.processes.items():
            if process.poll() is None:
                with redis.Redis(port=port, socket_timeout=1) as client:
                    client.flushdb()

    def master_of(self, key: str) -> int:
        """The port of the master that holds ``key``'s slot."""
        with redis.Redis(port=self.ports[0], decode_responses=True) as client:
            slot = client.cluster("keyslot", key)
            for start, end, (_host, port, *_), *_ in client.cluster("slots"):
                if start <= slot <= end:
                    return int(port)
        raise AssertionError("no master for the slot")

    def freeze(self, port: int) -> None:
        """SIGSTOP one node: its sockets stay open, its clients wait until they time out."""
        self.processes[port].send_signal(signal.SIGSTOP)

    def thaw(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGCONT)

    def kill(self, port: int) -> None:
        process = self.processes[port]
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait()
