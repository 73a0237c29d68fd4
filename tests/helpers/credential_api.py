"""A loopback emulator of every credential-catalog provider's API, as the catalog says.

One Starlette app plays all entries. The API of entry ``<name>`` lives under
``/<name>/<value>.../<path of the catalog's api_base_url>``, one path segment per
placeholder of the catalog's base URL (a Zendesk subdomain, a Datadog site), so that
:func:`api_base_override` gives the ``api_base_url`` an app configures
(``[credentials.<name>]``) to send the vault here.

A request is answered ``200`` (or the entry's documented verification status) only when it
carries a registered credential exactly where the catalog places it: every header with
exactly its documented value, every query parameter likewise (HTTP Basic decoded and
compared as the pair). Anything else is answered ``401``; a credential marked ``revoked``
gets ``403``. Every request is kept (method, path, header names, whether it matched) so a
test can check what was sent; values are not kept, unless the emulator is made with
``keep_values=True`` (a conformance test comparing the placement byte for byte): then the
headers and query parameters received are kept too, in this process's memory only, never
shown by ``repr`` and never logged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from oauthvault.providers.credentials import CredentialSpec

from tests.helpers.net import bound_socket
from tests.helpers.service_harness import UvicornThread

_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]{0,49})\}")


def api_base_override(root: str, spec: CredentialSpec) -> str:
    """The ``api_base_url`` that sends ``spec``'s requests to the emulator at ``root``."""
    base = spec.api_base_url
    host_end = base.index("/", len("https://")) if "/" in base[len("https://") :] else len(base)
    host, path = base[:host_end], base[host_end:]
    segments = "".join(f"/{{{name}}}" for name in _PLACEHOLDER.findall(host))
    return f"{root}/{spec.name}{segments}{path}"


@dataclass
class Seen:
    method: str
    path: str
    header_names: list[str]
    matched: bool
    #: With ``keep_values``: every header and query parameter received, in order (repeats
    #: kept), for comparisons in memory; never shown.
    headers: list[tuple[str, str]] = field(default_factory=list, repr=False, compare=False)
    query: list[tuple[str, str]] = field(default_factory=list, repr=False, compare=False)


@dataclass
class _Registered:
    headers: dict[str, str] = field(repr=False)
    query: dict[str, str] = field(repr=False)
    revoked: bool = False


class CredentialApiEmulator:
    """The emulator (see the module docstring); ``start()`` serves it on 127.0.0.1."""

    def __init__(self, specs: Mapping[str, CredentialSpec], *, keep_values: bool = False) -> None:
        self.specs = dict(specs)
        self.keep_values = keep_values
        self._socket = bound_socket()
        self.port = self._socket.getsockname()[1]
        self.root = f"http://127.0.0.1:{self.port}"
        self.seen: list[Seen] = []
        self._accepted: dict[str, list[_Registered]] = {}
        self.app = Starlette(
            routes=[
                Route(
                    "/{name}/{rest:path}",
                    self._answer,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"],
                )
            ]
        )
        self._server: UvicornThread | None = None

    def start(self) -> CredentialApiEmulator:
        self._server = UvicornThread(self.app, self._socket)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def base_override(self, name: str) -> str:
        return api_base_override(self.root, self.specs[name])

    def accept(
        self,
        name: str,
        credentials: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        access_token: str | None = None,
    ) -> None:
        """Register a credential the emulated API accepts, placed as the catalog says."""
        spec = self.specs[name]
        placement = spec.placement(credentials, params or {}, access_token)
        registered = _Registered(dict(placement.headers), dict(placement.query))
        self._accepted.setdefault(name, []).append(registered)

    def revoke(self, name: str) -> None:
        """Every credential of ``name`` is answered 403 from now on."""
        for registered in self._accepted.get(name, []):
            registered.revoked = True

    def forget(self, name: str) -> None:
        """Every credential of ``name`` is answered 401 from now on."""
        self._accepted.pop(name, None)

    def requests_for(self, name: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path.startswith(f"/{name}/")]

    def _matches(self, request: Request, registered: _Registered) -> bool:
        for header, value in registered.headers.items():
            if request.headers.get(header) != value:
                return False
        return all(request.query_params.get(k) == v for k, v in registered.query.items())

    async def _answer(self, request: Request) -> JSONResponse:
        name = request.path_params["name"]
        spec = self.specs.get(name)
        status, body = 404, {"error": "unknown provider"}
        match = None
        if spec is not None:
            match = next(
                (each for each in self._accepted.get(name, []) if self._matches(request, each)),
                None,
            )
            if match is None:
                status, body = 401, {"error": "unauthorized"}
            elif match.revoked:
                status, body = 403, {"error": "forbidden"}
            else:
                ok = spec.verify.ok if spec.verify is not None else 200
                status, body = ok, {"ok": True, "path": request.url.path}
        seen = Seen(
            request.method,
            request.url.path,
            sorted(request.headers.keys()),
            match is not None and not match.revoked,
        )
        if self.keep_values:
            seen.headers = list(request.headers.items())
            seen.query = list(request.query_params.multi_items())
        self.seen.append(seen)
        answer: dict[str, Any] = body
        return JSONResponse(answer, status_code=status)
