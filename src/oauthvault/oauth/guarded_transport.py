"""httpx transports whose connections reach public addresses only: no private, loopback,
link-local, shared, multicast, reserved or unspecified address, whatever a name resolves
to (``AsyncGuardedTransport``, ``GuardedTransport``).

The API proxy and the library client send a caller's request, with a credential in it, to
a provider's host; :mod:`oauthvault.providers.api_targets` checks the URL's host name. This
module checks where that name leads. A name resolving to an internal address (a provider's
DNS pointing at ``10.0.0.5``, a metadata service at ``169.254.169.254``, a rebinding name
answering a public address to a first look-up and ``127.0.0.1`` to the next) is refused
with :class:`AddressRefused` before any byte is sent.

How: httpcore opens every TCP connection through its network backend's ``connect_tcp(host,
port, ...)``. :class:`AsyncGuardedBackend` (``GuardedBackend``) wraps httpcore's default
backend: it resolves the name itself (:func:`resolve`, once per connection), checks every
address (:func:`address_allowed`: all must pass, or the name is refused), and connects to a
checked address, never to the name; nothing resolves the name again between the check and
the connection, so DNS rebinding cannot slip in. httpcore then starts TLS with
``server_hostname`` set to the URL's host name (``httpcore._async.connection``: the request's
``sni_hostname`` extension, else the origin's host; not the address connect_tcp was given),
so SNI and certificate checks still use the name, and the ``Host`` header comes from the
request. A pooled connection is reused only for its own origin, already checked.

``allow_loopback=True`` (an app's loopback test double, :attr:`ApiTarget.loopback`) lets
loopback addresses through (``127.0.0.0/8``, ``::1``, ``::ffff:127.0.0.1``): nothing else
private. Proxies from the environment are never used (the transports have none), and Unix
sockets are refused.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from types import TracebackType
from typing import Any, Self, cast

import anyio
import httpcore
import httpx

__all__ = [
    "AddressRefused",
    "AsyncGuardedBackend",
    "AsyncGuardedTransport",
    "GuardedBackend",
    "GuardedTransport",
    "address_allowed",
    "resolve",
]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# 100.64.0.0/10 (carrier-grade NAT) is not private to every Python's ipaddress, nor global.
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_SOCKET_OPTION = Any
#: httpx's own default limits.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class AddressRefused(httpx.ConnectError):
    """A host name resolves to an address a guarded transport may not reach (or does not
    resolve). ``.host`` is the name; the message never lists the addresses."""

    def __init__(self, host: str, reason: str = "resolves to a non-public address") -> None:
        self.host = host
        self.reason = reason
        super().__init__(f"{host}: {reason}; connection refused")


def address_allowed(address: str, *, allow_loopback: bool = False) -> bool:
    """True when ``address`` (an IP literal, maybe with an IPv6 ``%scope``) is public, or a
    loopback address and ``allow_loopback``. IPv4 addresses inside IPv6 (mapped
    ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d``, 6to4 ``2002:…``) are judged as IPv4."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ipaddress.IPv6Address(ip.packed)  # without its scope id
        if ip.ipv4_mapped is not None:
            return address_allowed(str(ip.ipv4_mapped), allow_loopback=allow_loopback)
        if ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            return address_allowed(str(embedded), allow_loopback=False)
        if ip.sixtofour is not None and not address_allowed(str(ip.sixtofour)):
            return False
        if ip.teredo is not None:
            return False
    if ip.is_loopback:
        return allow_loopback
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_link_local
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    )


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to for a TCP connection, in the resolver's order,
    without repeats (the function the backends call: tests replace it).

    Raises:
        OSError: the name does not resolve.
    """
    seen: list[str] = []
    for _family, _type, _proto, _name, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        address = str(sockaddr[0])
        if address not in seen:
            seen.append(address)
    return seen


def _checked(host: str, addresses: list[str], allow_loopback: bool) -> list[str]:
    if not addresses:
        raise AddressRefused(host, "does not resolve")
    if not all(address_allowed(a, allow_loopback=allow_loopback) for a in addresses):
        raise AddressRefused(host)
    return addresses


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


class AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's default backend, connecting only to checked addresses (module docstring)."""

    def __init__(
        self, *, allow_loopback: bool = False, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.allow_loopback = allow_loopback
        self.inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with anyio.fail_after(timeout):
                found = await anyio.to_thread.run_sync(resolve, host, port, abandon_on_cancel=True)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"{host}: name resolution timed out") from None
        except OSError:
            raise AddressRefused(host, "does not resolve") from None
        addresses = _checked(host, found, self.allow_loopback)
        for address in addresses[:-1]:
            with contextlib.suppress(httpcore.ConnectError, httpcore.ConnectTimeout):
                return await self.inner.connect_tcp(
                    address, port, _left(deadline), local_address, socket_options
                )
        return await self.inner.connect_tcp(
            addresses[-1], port, _left(deadline), local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[_SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("a guarded transport does not use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedBackend(httpcore.NetworkBackend):
    """The blocking twin of :class:`AsyncGuardedBackend` (resolution has no timeout)."""

    def __init__(
        self, *, allow_loopback: bool = False, inner: httpcore.NetworkBackend | None = None
    ) -> None:
        self.allow_loopback = allow_loopback
        self.inner = inner if inner is not None else httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            found = resolve(host, port)
        except OSError:
            raise AddressRefused(host, "does not resolve") from None
        addresses = _checked(host, found, self.allow_loopback)
        for address in addresses[:-1]:  # the next address when one does not answer
            with contextlib.suppress(httpcore.ConnectError, httpcore.ConnectTimeout):
                return self.inner.connect_tcp(
                    address, port, _left(deadline), local_address, socket_options
                )
        return self.inner.connect_tcp(
            addresses[-1], port, _left(deadline), local_address, socket_options
        )

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[_SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("a guarded transport does not use Unix sockets")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


@contextlib.contextmanager
def _mapped(request: httpx.Request) -> Iterator[None]:
    """httpcore's exceptions as httpx's of the same name, as httpx's own transports map
    them; :class:`AddressRefused` passes as it is, given the request."""
    try:
        yield
    except AddressRefused as exc:
        exc.request = request
        raise
    except Exception as exc:
        if not type(exc).__module__.startswith("httpcore"):
            raise
        for cls in type(exc).__mro__:  # the most specific httpx class of the same name
            mapped = getattr(httpx, cls.__name__, None)
            if isinstance(mapped, type) and issubclass(mapped, httpx.TransportError):
                raise mapped(str(exc), request=request) from exc
        raise  # pragma: no cover - every httpcore error has an httpx twin


def _core_request(request: httpx.Request) -> httpcore.Request:
    return httpcore.Request(
        method=request.method,
        url=httpcore.URL(
            scheme=request.url.raw_scheme,
            host=request.url.raw_host,
            port=request.url.port,
            target=request.url.raw_path,
        ),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )


def _ssl_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    return verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)


class _AsyncStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes], request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped(self._request):
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class _Stream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes], request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        with _mapped(self._request):
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class AsyncGuardedTransport(httpx.AsyncBaseTransport):
    """An :class:`httpx.AsyncHTTPTransport` (HTTP/1.1, no proxy) over
    :class:`AsyncGuardedBackend`: pass it as an ``httpx.AsyncClient``'s ``transport``.

    ``backend`` replaces the one ``allow_loopback`` makes (a test's, wrapping a fake).

    Raises (from a request): :class:`AddressRefused` (an ``httpx.ConnectError``) for a host
    it may not reach; httpx's usual errors otherwise. Response bodies stream.
    """

    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
        backend: AsyncGuardedBackend | None = None,
    ) -> None:
        if backend is None:
            backend = AsyncGuardedBackend(allow_loopback=allow_loopback)
        self.allow_loopback = backend.allow_loopback
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _mapped(request):
            response = await self._pool.handle_async_request(_core_request(request))
        body = cast("AsyncIterable[bytes]", response.stream)  # an async pool's answer
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_AsyncStream(body, request),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()


class GuardedTransport(httpx.BaseTransport):
    """The blocking twin of :class:`AsyncGuardedTransport`, for an ``httpx.Client``."""

    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
        backend: GuardedBackend | None = None,
    ) -> None:
        if backend is None:
            backend = GuardedBackend(allow_loopback=allow_loopback)
        self.allow_loopback = backend.allow_loopback
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with _mapped(request):
            response = self._pool.handle_request(_core_request(request))
        body = cast("Iterable[bytes]", response.stream)  # a blocking pool's answer
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Stream(body, request),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.close()
