"""Guarded transports connect only to public addresses (loopback when allowed), to the
address they checked, with TLS and Host still naming the host; bodies stream."""

from __future__ import annotations

import asyncio
import socket
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpcore
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from oauthvault.oauth import guarded_transport
from oauthvault.oauth.guarded_transport import (
    AddressRefused,
    AsyncGuardedBackend,
    AsyncGuardedTransport,
    GuardedBackend,
    GuardedTransport,
    address_allowed,
)

from tests.helpers.net import bound_socket
from tests.helpers.service_harness import UvicornThread

PUBLIC = "93.184.216.34"
CHUNK = b"x" * 65536
BIG = 50 * 1024 * 1024


async def host(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.headers["host"])


async def big(request: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(BIG // len(CHUNK)):
            yield CHUNK

    return StreamingResponse(body(), headers={"content-length": str(BIG)})


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    app = Starlette(routes=[Route("/host", host), Route("/big", big)])
    thread = UvicornThread(app, bound_socket())
    thread.start()
    try:
        yield thread.socket.getsockname()[1]
    finally:
        thread.stop()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket that accepts nothing: a connection made to it stays pending."""
    sock = bound_socket()
    sock.listen(8)
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def nothing_connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


@pytest.mark.parametrize(
    ("address", "allowed", "with_loopback"),
    [
        (PUBLIC, True, True),
        ("8.8.8.8", True, True),
        ("2606:4700:4700::1111", True, True),
        ("127.0.0.1", False, True),
        ("127.8.9.10", False, True),
        ("::1", False, True),
        ("::ffff:127.0.0.1", False, True),
        ("0.0.0.0", False, False),
        ("::", False, False),
        ("10.0.0.5", False, False),
        ("172.16.0.1", False, False),
        ("192.168.1.1", False, False),
        ("169.254.169.254", False, False),
        ("100.64.0.1", False, False),
        ("100.127.255.254", False, False),
        ("224.0.0.1", False, False),
        ("233.252.0.1", False, False),
        ("240.0.0.1", False, False),
        ("255.255.255.255", False, False),
        ("198.18.0.1", False, False),
        ("192.0.2.1", False, False),
        ("fc00::1", False, False),
        ("fd12:3456::1", False, False),
        ("fe80::1", False, False),
        ("fe80::1%1", False, False),
        ("fec0::1", False, False),
        ("ff02::1", False, False),
        ("::ffff:10.0.0.1", False, False),
        ("::ffff:169.254.169.254", False, False),
        ("::ffff:0.0.0.0", False, False),
        ("64:ff9b::a9fe:a9fe", False, False),
        ("64:ff9b::5db8:d822", True, True),
        ("2002:7f00:1::1", False, False),
        ("2002:a00:1::1", False, False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False, False),
        ("2001:db8::1", False, False),
        ("not an address", False, False),
    ],
)
def test_address_allowed(address: str, allowed: bool, with_loopback: bool) -> None:
    assert address_allowed(address) is allowed
    assert address_allowed(address, allow_loopback=True) is with_loopback


def sync_get(url: str, *, allow_loopback: bool = False) -> httpx.Response:
    with httpx.Client(transport=GuardedTransport(allow_loopback=allow_loopback)) as client:
        return client.get(url, timeout=10)


def async_get(url: str, *, allow_loopback: bool = False) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = AsyncGuardedTransport(allow_loopback=allow_loopback)
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.get(url, timeout=10)

    return asyncio.run(go())


GETS = [pytest.param(sync_get, id="sync"), pytest.param(async_get, id="async")]


@pytest.mark.parametrize("get", GETS)
@pytest.mark.parametrize("where", ["127.0.0.1", "localhost", "[::1]", "0.0.0.0"])
def test_loopback_is_refused_before_connecting(
    get: Any, where: str, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    with pytest.raises(AddressRefused) as caught:
        get(f"http://{where}:{port}/")
    assert caught.value.host == where.strip("[]")
    assert caught.value.request.url.port == port
    assert isinstance(caught.value, httpx.ConnectError)
    assert nothing_connected(listener)


@pytest.mark.parametrize("get", GETS)
@pytest.mark.parametrize(
    "answer",
    [["127.0.0.1"], ["10.1.2.3"], ["169.254.169.254"], [PUBLIC, "127.0.0.1"], ["::1", PUBLIC]],
)
def test_a_name_resolving_to_a_private_address_is_refused(
    get: Any, answer: list[str], listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = listener.getsockname()[1]
    asked: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return answer

    monkeypatch.setattr(guarded_transport, "resolve", resolve)
    with pytest.raises(AddressRefused, match=r"^api\.example\.com: resolves") as caught:
        get(f"http://api.example.com:{port}/")
    assert asked == [("api.example.com", port)]
    assert "127.0.0.1" not in str(caught.value)
    assert "10.1.2.3" not in str(caught.value)
    assert nothing_connected(listener)
    # Even a transport that allows loopback refuses every other private address.
    if not all(address_allowed(a, allow_loopback=True) for a in answer):
        with pytest.raises(AddressRefused):
            get(f"http://api.example.com:{port}/", allow_loopback=True)
        assert nothing_connected(listener)


@pytest.mark.parametrize("get", GETS)
def test_a_name_that_does_not_resolve_is_refused(get: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def resolve(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(guarded_transport, "resolve", resolve)
    with pytest.raises(AddressRefused, match="does not resolve"):
        get("https://nowhere.example.com/")


class FakeStream:
    """A connection that records the TLS server name it is asked to check, then fails."""

    def __init__(self, seen: dict[str, Any]) -> None:
        self.seen = seen

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, **_: Any) -> None:
        self.seen["server_hostname"] = server_hostname
        raise httpcore.ConnectError("recorded")

    def close(self) -> None:
        pass


class FakeBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.seen["connected"] = (host, port)
        return FakeStream(self.seen)


class AsyncFakeStream(FakeStream):
    async def start_tls(  # type: ignore[override]
        self, ssl_context: Any, server_hostname: str | None = None, **_: Any
    ) -> None:
        FakeStream.start_tls(self, ssl_context, server_hostname)

    async def aclose(self) -> None:
        pass


class AsyncFakeBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.seen["connected"] = (host, port)
        return AsyncFakeStream(self.seen)


def test_connects_to_the_checked_address_and_tls_checks_the_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: the name is resolved once per connection, the connection goes to the
    address checked (never the name again), and httpcore's TLS uses the name for SNI and the
    certificate. A second look-up answering loopback is refused."""
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    monkeypatch.setattr(guarded_transport, "resolve", lambda host, port: next(answers))
    fake = FakeBackend()
    transport = GuardedTransport(backend=GuardedBackend(inner=fake))
    with httpx.Client(transport=transport) as client:
        with pytest.raises(httpx.ConnectError, match="recorded"):
            client.get("https://api.example.com/x")
        assert fake.seen == {"connected": (PUBLIC, 443), "server_hostname": "api.example.com"}
        with pytest.raises(AddressRefused):
            client.get("https://api.example.com/x")


def test_async_connects_to_the_checked_address_and_tls_checks_the_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = iter([[PUBLIC], ["::ffff:127.0.0.1"]])
    monkeypatch.setattr(guarded_transport, "resolve", lambda host, port: next(answers))
    fake = AsyncFakeBackend()

    async def go() -> None:
        transport = AsyncGuardedTransport(backend=AsyncGuardedBackend(inner=fake))
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.ConnectError, match="recorded"):
                await client.get("https://api.example.com/x")
            with pytest.raises(AddressRefused):
                await client.get("https://api.example.com/x")

    asyncio.run(go())
    assert fake.seen == {"connected": (PUBLIC, 443), "server_hostname": "api.example.com"}


@pytest.mark.parametrize("get", GETS)
def test_allow_loopback_reaches_a_loopback_server_by_name(get: Any, server: int) -> None:
    response = get(f"http://localhost:{server}/host", allow_loopback=True)
    assert response.status_code == 200
    assert response.text == f"localhost:{server}"  # Host names the host, not the address
    response = get(f"http://127.0.0.1:{server}/host", allow_loopback=True)
    assert response.text == f"127.0.0.1:{server}"


def test_a_large_body_streams_with_flat_memory(server: int) -> None:
    tracemalloc.start()
    try:
        received = 0
        with (
            httpx.Client(transport=GuardedTransport(allow_loopback=True)) as client,
            client.stream("GET", f"http://127.0.0.1:{server}/big", timeout=30) as response,
        ):
            for chunk in response.iter_raw():
                received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == BIG
    assert peak < 8 * 1024 * 1024


def test_a_large_body_streams_with_flat_memory_async(server: int) -> None:
    async def go() -> tuple[int, int]:
        received = 0
        transport = AsyncGuardedTransport(allow_loopback=True)
        async with (
            httpx.AsyncClient(transport=transport) as client,
            client.stream("GET", f"http://127.0.0.1:{server}/big", timeout=30) as response,
        ):
            async for chunk in response.aiter_raw():
                received += len(chunk)
        return received, tracemalloc.get_traced_memory()[1]

    tracemalloc.start()
    try:
        received, peak = asyncio.run(go())
    finally:
        tracemalloc.stop()
    assert received == BIG
    assert peak < 8 * 1024 * 1024
