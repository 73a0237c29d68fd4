"""Where an authenticated API request may go: :class:`ApiTarget`, and the checks the API
proxy and the library client make before a request leaves (pure: no I/O).

A target is one connection's filled API base URL (``https://gmail.googleapis.com``,
``https://{shop}.myshopify.com/admin/api/2024-07`` filled) and the hosts the provider
owns: the base URL's host and its ``api_hosts`` patterns (an exact name, or ``*.`` and
one label). :func:`build_url` appends a caller's raw path and query to the base URL,
refusing (:class:`TargetRefused`) anything that could move the request to another host or
out of the base URL's path; :func:`allows_redirect` says whether a redirect may be followed.

Path rules (the path is what follows ``/v1/proxy/``, still percent-encoded, as the ASGI
scope's ``raw_path`` holds it; "first segment" is the part before its first ``/``):

- printable ASCII only: controls, space and DEL, raw or percent-encoded (``%00``, ``%0a``,
  ``%7f``, a decoded C0/C1 control), give ``control_character``; non-ASCII and characters a
  path never holds raw (``#`` ``?`` ``"`` ``<`` ``>`` ``[`` ``]`` ``^`` `````` ``{`` ``|``
  ``}``) give ``invalid_character``; a ``%`` not followed by two hex digits gives
  ``bad_percent_encoding``;
- ``/`` at the start (``//host``: scheme-relative) or a ``:`` in the first segment
  (``http:``, ``javascript:``) gives ``absolute_url``; an empty segment (``a//b``) gives
  ``empty_segment`` (a trailing ``/`` is kept);
- a backslash, raw or ``%5c`` (or one percent-decoding to it), gives ``backslash``;
- ``@`` in the first segment, raw or ``%40``, gives ``userinfo`` (later segments may hold
  it: e-mail addresses in Google Calendar and Microsoft Graph paths);
- ``;`` raw gives ``path_parameter`` (``..;/`` is ``..`` to some servers);
- a segment that is ``.`` or ``..`` once percent-decoded (``%2e``, ``.%2E``), or a piece of
  one between encoded slashes (``a%2f..%2fb``), also before an encoded ``;`` or with
  encoded spaces around it (``..%3bx``, ``..%20``), gives ``dot_segment``;
- encoded separators give ``encoded_separator``: ``%2f`` ``%2e`` ``%3a`` ``%40`` ``%3b`` in
  the first segment; ``%3f`` and ``%23`` anywhere (they would only move text into a query
  or fragment, for a server that decodes before it splits); ``%2f`` in a later segment is
  kept (GitLab's ``projects/group%2Fproject``, file paths) unless it makes an empty piece
  (``%2f`` first, last, or twice in a row);
- ``%25`` followed by an encoded separator, dot, backslash or NUL (``%252e``, ``%252f``,
  ``%255c``, ``%253a``, ``%253f``, ``%2540``, ``%2523``, ``%2500``) gives
  ``double_encoding``;
- a character whose compatibility form (NFKC) adds ``/ \\ . ? # @ : ; %`` (full-width
  ``%EF%BC%8F``, one-dot leader ``%E2%80%A4``) gives ``unicode_separator``;
- a path or query longer than 8192 characters gives ``too_long``.

The query is the raw query string; it is kept exactly unless it holds controls, spaces,
non-ASCII or ``#`` (``control_character``, ``invalid_character``). The URL built is then
parsed again, and its scheme, host, port and path prefix must be the base URL's
(``host_not_allowed`` otherwise: defence in depth; no path the rules accept reaches it).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, unquote, urljoin, urlsplit, urlunsplit

from oauthvault.errors import VaultError
from oauthvault.providers.rate_limits import RateLimitReset
from oauthvault.providers.spec import api_host_matches, placeholders_in

if TYPE_CHECKING:
    from oauthvault.providers.credentials import CredentialSpec
    from oauthvault.providers.spec import ProviderSpec

__all__ = [
    "REFUSAL_CODES",
    "ApiTarget",
    "TargetRefused",
    "allows_redirect",
    "build_url",
    "credential_target",
    "host_allowed",
    "is_loopback_host",
    "provider_target",
    "request_url",
]

#: Every :attr:`TargetRefused.code`.
REFUSAL_CODES = frozenset(
    {
        "absolute_url",
        "userinfo",
        "backslash",
        "encoded_separator",
        "double_encoding",
        "unicode_separator",
        "dot_segment",
        "empty_segment",
        "path_parameter",
        "control_character",
        "invalid_character",
        "bad_percent_encoding",
        "too_long",
        "host_not_allowed",
        "scheme_not_allowed",
        "bad_base_url",
        "redirect_refused",
    }
)
MAX_LENGTH = 8192
_LOOPBACK_NAMES = frozenset({"localhost"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters a raw path may hold besides unreserved ones and "%": RFC 3986 sub-delims (";"
# has a rule of its own), ":" and "@" (rules of their own), and "/".
_PATH_CHARS = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$")
# A host name (labels of letters, digits and hyphens) or an IP literal.
_HOST = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_ENCODED = re.compile(r"%([0-9A-Fa-f]{2})")
_DOUBLE = re.compile(r"%25(?:2[EeFf]|5[Cc]|3[AaFf]|40|23|00)")
_FIRST_SEGMENT_ENCODED = {"2f", "2e", "3a", "40", "3b", "5c"}
_NEVER_ENCODED = {"3f", "23"}
_SEPARATORS = frozenset("/\\.?#@:;%")


class TargetRefused(VaultError):
    """A request (or a redirect) that must not be sent. ``.code`` is stable (one of
    :data:`REFUSAL_CODES`); ``.detail`` says why, naming at most the offending host."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}")


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (``127.0.0.1``, ``::1``, ``[::1]``)."""
    host = host.lower().rstrip(".").removeprefix("[").removesuffix("]")
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _normal_host(host: str) -> str:
    return host.lower().rstrip(".").removeprefix("[").removesuffix("]")


@dataclass(frozen=True, slots=True)
class ApiTarget:
    """One connection's API: ``base_url`` (filled: no placeholders, no trailing ``/``, no
    query), ``hosts`` (the base URL's host first, then ``api_hosts`` patterns) and
    ``loopback`` (the base URL is http on a loopback host: an app's test double; only then
    may a request use http or reach a loopback address). Build one with :meth:`of`.
    ``headers`` are the API's constant headers (an OAuth entry's ``api_headers``, a
    credential entry's constant ``[headers]``) and ``rate_limit_reset`` the header that
    says when a 429 may be tried again (:mod:`oauthvault.providers.rate_limits`).

    Raises:
        TargetRefused: ``bad_base_url`` or ``scheme_not_allowed`` for a base URL that
            cannot be a target, or fields that disagree with it.
    """

    base_url: str
    hosts: tuple[str, ...]
    loopback: bool = False
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    rate_limit_reset: RateLimitReset | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "hosts", tuple(self.hosts))
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))
        parts = _split_base(self.base_url)
        if (parts.scheme == "http") != self.loopback:
            raise TargetRefused("bad_base_url", "loopback must be true exactly for http bases")
        host = _normal_host(parts.hostname or "")
        if not self.hosts or self.hosts[0] != host:
            raise TargetRefused("bad_base_url", "hosts must start with the base URL's host")

    @classmethod
    def of(
        cls,
        base_url: str,
        api_hosts: Iterable[str] = (),
        *,
        headers: Mapping[str, str] | None = None,
        rate_limit_reset: RateLimitReset | None = None,
    ) -> ApiTarget:
        """The target of a filled ``base_url`` and a provider's ``api_hosts`` patterns."""
        parts = _split_base(base_url)
        host = _normal_host(parts.hostname or "")
        hosts = (host, *(p for p in api_hosts if p != host))
        return cls(
            base_url,
            hosts,
            loopback=parts.scheme == "http",
            headers=headers or {},
            rate_limit_reset=rate_limit_reset,
        )

    def on_host(self, host: str) -> ApiTarget:
        """The target on another of the provider's API hosts (an ``api_hosts`` entry: an
        upload or content host), its base URL that host's root, the hosts allowed the same.

        Raises:
            TargetRefused: ``host_not_allowed``, for a host the provider does not own, with
                a port, userinfo or anything but a host name.
        """
        name = _normal_host(host)
        if not _HOST.match(name) or not host_allowed(self, name):
            raise TargetRefused("host_not_allowed", "that host is not one of the provider's")
        if name == self.hosts[0]:
            return self
        if self.loopback:  # a test double's base URL keeps its port
            return self
        return ApiTarget.of(
            f"{self.scheme}://{name}",
            (self.hosts[0], *self.hosts[1:]),
            headers=self.headers,
            rate_limit_reset=self.rate_limit_reset,
        )

    @property
    def scheme(self) -> str:
        return urlsplit(self.base_url).scheme

    @property
    def port(self) -> int:
        """The base URL's port (the scheme's default when it names none)."""
        parts = urlsplit(self.base_url)
        return parts.port or _DEFAULT_PORTS[parts.scheme]


def _split_base(base_url: str) -> SplitResult:
    if placeholders_in(base_url) or _CONTROL.search(base_url):
        raise TargetRefused("bad_base_url", "the base URL is not filled or not a plain URL")
    parts = urlsplit(base_url)
    if not parts.netloc or parts.hostname is None or "@" in parts.netloc:
        raise TargetRefused("bad_base_url", "the base URL needs a host and no userinfo")
    if parts.query or parts.fragment or "?" in base_url or "#" in base_url:
        raise TargetRefused("bad_base_url", "the base URL must not have a query or fragment")
    if base_url.endswith("/") or "\\" in base_url:
        raise TargetRefused("bad_base_url", "the base URL must not end with / or hold \\")
    try:
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise TargetRefused("bad_base_url", "the base URL has a malformed port") from None
    if parts.scheme == "https":
        return parts
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return parts
    raise TargetRefused(
        "scheme_not_allowed", "the base URL must be https (or http on a loopback host)"
    )


def provider_target(spec: ProviderSpec, params: Mapping[str, str]) -> ApiTarget | None:
    """The target of an OAuth connection (``None``: the provider has no API base URL).

    Raises:
        ConfigError: a parameter the base URL needs is missing or not valid.
        TargetRefused: the filled base URL cannot be a target.
    """
    base = spec.api_base_for(params)
    if base is None:
        return None
    return ApiTarget.of(
        base, spec.api_hosts, headers=spec.api_headers, rate_limit_reset=spec.rate_limit_reset
    )


def credential_target(
    spec: CredentialSpec, params: Mapping[str, str], credentials: Mapping[str, str]
) -> ApiTarget:
    """The target of an API-key or password connection (its base URL filled with
    connection parameters and non-secret fields).

    Raises:
        InvalidInput: a value the base URL needs is missing or unsafe.
        TargetRefused: the filled base URL cannot be a target.
    """
    return ApiTarget.of(
        spec.url("", params, credentials),
        headers=spec.constant_headers,
        rate_limit_reset=spec.rate_limit_reset,
    )


def host_allowed(target: ApiTarget, host: str) -> bool:
    """True when ``host`` is the base URL's host or matches one of the target's
    ``api_hosts`` patterns (case-insensitive; a trailing dot and IPv6 brackets ignored)."""
    host = _normal_host(host)
    if not _HOST.match(host) and not _is_ip(host):
        return False
    if host == target.hosts[0]:
        return True
    return any(api_host_matches(pattern, host) for pattern in target.hosts[1:])


def _refuse_characters(text: str, what: str) -> None:
    if len(text) > MAX_LENGTH:
        raise TargetRefused("too_long", f"the {what} is longer than {MAX_LENGTH} characters")
    if _CONTROL.search(text):
        raise TargetRefused("control_character", f"the {what} holds a control character")
    if not text.isascii():
        raise TargetRefused("invalid_character", f"the {what} holds a non-ASCII character")
    if "#" in text:
        raise TargetRefused("invalid_character", f"the {what} holds #")


def _check_segment(raw: str, first: bool) -> None:
    """The rules of one raw path segment (between raw ``/``)."""
    codes = [m.lower() for m in _ENCODED.findall(raw)]
    if first and ":" in raw:
        raise TargetRefused("absolute_url", "the path starts with a scheme")
    if first and ("@" in raw or "40" in codes):
        raise TargetRefused("userinfo", "the path's first segment holds @")
    if ";" in raw:
        raise TargetRefused("path_parameter", "the path holds ;")
    if "5c" in codes:
        raise TargetRefused("backslash", "the path holds an encoded backslash")
    if _DOUBLE.search(raw):
        raise TargetRefused("double_encoding", "the path holds a double-encoded separator")
    decoded = unquote(raw, errors="replace")
    if any(unicodedata.category(c) == "Cc" for c in decoded):
        raise TargetRefused("control_character", "the path holds a control character")
    pieces = decoded.split("/")
    # "..;x" and ".. " are ".." to some servers (path parameters, trimmed names).
    if any(piece.split(";", 1)[0].strip() in (".", "..") for piece in pieces):
        raise TargetRefused("dot_segment", "the path holds a . or .. segment")
    if first and _FIRST_SEGMENT_ENCODED.intersection(codes):
        raise TargetRefused("encoded_separator", "the path's first segment is encoded")
    if _NEVER_ENCODED.intersection(codes):
        raise TargetRefused("encoded_separator", "the path holds an encoded ? or #")
    if len(pieces) > 1 and not all(pieces):
        raise TargetRefused("encoded_separator", "an encoded / makes an empty segment")
    for char in decoded:
        if char.isascii():
            continue
        compat = unicodedata.normalize("NFKC", char)
        if compat != char and _SEPARATORS.intersection(compat):
            raise TargetRefused("unicode_separator", "the path holds a look-alike separator")


def build_url(target: ApiTarget, path: str | bytes, query: str | bytes = "") -> str:
    """The base URL, ``/``, the caller's raw ``path`` and (when not empty) ``?`` and the raw
    ``query``: exactly as given, percent-encoding untouched (see the module rules).

    Raises:
        TargetRefused: the path or query breaks a rule, before anything is sent.
    """
    path = _text(path, "path")
    query = _text(query, "query")
    _refuse_characters(path, "path")
    _refuse_characters(query, "query")
    if _PERCENT.search(path):
        raise TargetRefused("bad_percent_encoding", "the path holds a % without two hex digits")
    if "\\" in path:
        raise TargetRefused("backslash", "the path holds a backslash")
    if path.startswith("/"):
        raise TargetRefused("absolute_url", "the path starts with /")
    if not _PATH_CHARS.match(path):
        raise TargetRefused("invalid_character", "the path holds a character paths never hold")
    segments = path.split("/")
    _check_segment(segments[0], first=True)
    if any(not segment for segment in segments[1:-1]):
        raise TargetRefused("empty_segment", "the path holds an empty segment")
    for segment in segments[1:]:
        _check_segment(segment, first=False)
    url = f"{target.base_url}/{path}" + (f"?{query}" if query else "")
    _check_final(target, url)
    return url


def request_url(target: ApiTarget, url: str) -> str:
    """The URL a library client's request (``vault.http_client``) goes to, checked by the
    proxy's rules: :func:`build_url` of the path and query of ``url``, percent-encoded as
    sent.

    A relative ``url`` is relative to the base URL, a leading ``/`` included (as httpx's
    ``base_url`` reads it: ``/gmail/v1/users/me`` below ``https://gmail.googleapis.com``),
    so ``//host/x`` and ``../x`` break the path rules (``absolute_url``, ``dot_segment``).
    An absolute one (a scheme or a host) must have the base URL's scheme, host and port and
    no userinfo (``host_not_allowed``, ``userinfo``) and lie below its path, or be on
    another of the provider's API hosts (``api_hosts``: an upload or content host), from
    that host's root.

    Raises:
        TargetRefused: the URL breaks a rule; nothing may be sent.
    """
    parts = urlsplit(url)
    if not (parts.scheme or parts.netloc or url.startswith("//")):
        return build_url(target, parts.path.removeprefix("/"), parts.query)
    if "@" in parts.netloc:
        raise TargetRefused("userinfo", "the URL holds userinfo")
    base = urlsplit(target.base_url)
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        raise TargetRefused("host_not_allowed", "the URL has a malformed port") from None
    host = _normal_host(parts.hostname or "")
    if host != target.hosts[0] and parts.scheme == base.scheme and parts.port is None:
        # another of the provider's API hosts (an upload or content host): from its root
        other = target.on_host(host)
        return build_url(other, parts.path.removeprefix("/"), parts.query)
    if parts.scheme != base.scheme or host != target.hosts[0] or port != target.port:
        raise TargetRefused("host_not_allowed", "the URL is not on the API's base URL")
    if not parts.path.startswith(f"{base.path}/"):
        raise TargetRefused("host_not_allowed", "the URL leaves the API's base URL")
    return build_url(target, parts.path[len(base.path) + 1 :], parts.query)


def _text(value: str | bytes, what: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        raise TargetRefused("invalid_character", f"the {what} holds a non-ASCII byte") from None


def _check_final(target: ApiTarget, url: str) -> None:
    base, final = urlsplit(target.base_url), urlsplit(url)
    if (
        final.scheme != base.scheme
        or final.netloc != base.netloc
        or final.hostname != base.hostname
        or final.port != base.port
        or not final.path.startswith(f"{base.path}/")
        or final.fragment
    ):
        raise TargetRefused("host_not_allowed", "the URL built leaves the API's base URL")


def allows_redirect(target: ApiTarget, location: str, current_url: str) -> str | None:
    """The absolute URL a redirect's ``location`` (relative to ``current_url``) names, when
    it may be followed: https (http only for a loopback target), no userinfo, a host
    :func:`host_allowed`, and the scheme's default port (or the base URL's own host and
    port); ``None`` otherwise. The fragment is dropped."""
    if not location or len(location) > MAX_LENGTH or not location.isascii():
        return None
    if _CONTROL.search(location) or "\\" in location or "%5c" in location.lower():
        return None
    url = urljoin(current_url, location)
    parts = urlsplit(url)
    allowed_schemes = ("https", "http") if target.loopback else ("https",)
    if parts.scheme not in allowed_schemes or "@" in parts.netloc or parts.hostname is None:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return None
    base = urlsplit(target.base_url)
    same_origin = _normal_host(parts.hostname) == target.hosts[0] and port == target.port
    if not same_origin and port != _DEFAULT_PORTS[parts.scheme]:
        return None
    if not same_origin and parts.scheme != base.scheme:
        return None
    if not host_allowed(target, parts.hostname):
        return None
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
