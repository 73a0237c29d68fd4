"""Local networking helpers."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def bound_socket() -> socket.socket:
    """A TCP socket bound to a free port on 127.0.0.1, held until a server takes it
    (:class:`~tests.helpers.service_harness.UvicornThread`): no other process of the suite
    can take the port meanwhile, as it could between :func:`free_port` and a bind."""
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    held.bind(("127.0.0.1", 0))
    return held
