"""The rules of an authenticated call to a provider's API that the API proxy
(:mod:`oauthvault.service.proxy`) and the library client (``vault.http_client``,
:mod:`oauthvault.vault.api_client_async`) share, written once (pure: no I/O):

- where the credential goes on a request (:func:`apply_placement`);
- which headers are hop-by-hop (RFC 9110 §7.6.1, and those a ``Connection`` header lists),
  so neither passes them on (:func:`forwarded_headers`, :func:`returned_headers`);
- what a ``Retry-After`` asks for (:func:`retry_after`: delay-seconds or an HTTP date);
- when a 429 or 503 is waited out and the request sent again (:func:`may_retry`: the wait
  is known and at most the cap, the method is idempotent or the request carries an
  ``Idempotency-Key``, its body can be sent again, and retries are left) and how long to
  sleep (:func:`retry_sleep`, with jitter);
- when a 401 is renewed once (:func:`may_renew`) and when a refusal is checked with the
  credential's verification request (:func:`should_verify`);
- which redirects are followed at all (:func:`follows_redirect`: GET and HEAD, at most
  :data:`MAX_REDIRECTS`); where to is :func:`oauthvault.providers.api_targets.allows_redirect`.

Where a request may go (its URL and path) is :mod:`oauthvault.providers.api_targets`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from urllib.parse import urlencode, urlsplit

import httpx

from oauthvault.providers.credentials import Placement

__all__ = [
    "HOP_BY_HOP",
    "IDEMPOTENT_METHODS",
    "MAX_REDIRECTS",
    "REDIRECT_METHODS",
    "RETRY_STATUSES",
    "apply_placement",
    "follows_redirect",
    "forwarded_headers",
    "may_renew",
    "may_retry",
    "retry_safe",
    "retry_sleep",
    "returned_headers",
    "should_verify",
    "with_query",
]

#: RFC 9110 §7.6.1, and the proxy-era names still seen.
HOP_BY_HOP = frozenset(
    """connection keep-alive proxy-authenticate proxy-authorization proxy-connection te
    trailer transfer-encoding upgrade""".split()
)
#: Methods a retry cannot repeat the effect of (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: Answers waited out when their ``Retry-After`` is short.
RETRY_STATUSES = frozenset({429, 503})
#: Methods whose redirects are followed (to the provider's own hosts only).
REDIRECT_METHODS = frozenset({"GET", "HEAD"})
MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# A caller's headers never sent on: its own credential and cookies, and what the HTTP
# client sets itself.
_NOT_FORWARDED = HOP_BY_HOP | {"authorization", "cookie", "host", "content-length", "expect"}
_NOT_RETURNED = HOP_BY_HOP | {"set-cookie", "content-length"}


def with_query(url: str, query: Mapping[str, str]) -> str:
    """``url`` with ``query`` (a credential placed in the query) added after its own query
    parameters, which are kept byte for byte."""
    if not query:
        return url
    return url + ("&" if urlsplit(url).query else "?") + urlencode(dict(query))


def apply_placement(request: httpx.Request, placement: Placement) -> None:
    """Put the credential on ``request``: its headers (replacing any of the same name)
    and its query parameters (likewise)."""
    request.headers.update(placement.headers)
    if placement.query:
        request.url = request.url.copy_merge_params(dict(placement.query))


def _listed(headers: Iterable[tuple[str, str]]) -> set[str]:
    """The header names the ``Connection`` headers list (hop-by-hop for this message)."""
    return {
        name.strip().lower()
        for header, value in headers
        if header.lower() == "connection"
        for name in value.split(",")
    }


def forwarded_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """A caller's headers that are sent on to the provider: not hop-by-hop (nor listed in
    ``Connection``), not its ``Authorization``, ``Cookie``, ``Host``, ``Content-Length``
    or ``Expect``, and no ``Oauthvault-*`` header."""
    pairs = list(headers)
    listed = _listed(pairs)
    kept = []
    for name, value in pairs:
        lower = name.lower()
        if lower in _NOT_FORWARDED or lower in listed or lower.startswith("oauthvault-"):
            continue
        kept.append((name, value))
    return kept


def returned_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """A provider's answer headers that are passed back, in order and every value of a
    repeated name kept (``Link``, ``Vary``): not hop-by-hop (nor listed in
    ``Connection``), no ``Set-Cookie``, and no ``Oauthvault-*`` (a provider cannot make its
    answer look like the vault's refusal); ``Content-Length`` kept once (the raw bytes pass
    untouched, so their length holds)."""
    pairs = list(headers)
    listed = _listed(pairs)
    kept: list[tuple[str, str]] = []
    length = None
    for name, value in pairs:
        lower = name.lower()
        if lower == "content-length":
            length = value
        if lower in _NOT_RETURNED or lower in listed or lower.startswith("oauthvault-"):
            continue
        kept.append((name, value))
    if length is not None:
        kept.append(("content-length", length))
    return kept


def retry_safe(method: str, headers: Iterable[str]) -> bool:
    """True when sending the request twice does no harm: an idempotent method, or an
    ``Idempotency-Key`` among the header ``names``."""
    return method.upper() in IDEMPOTENT_METHODS or any(
        name.lower() == "idempotency-key" for name in headers
    )


def may_retry(
    status: int,
    wait: float | None,
    *,
    safe: bool,
    replayable: bool,
    attempts: int,
    retries: int,
    cap: float,
) -> bool:
    """True when a ``status`` answer is waited out (``wait`` seconds, from
    :func:`retry_after`) and the request sent again: a 429 or 503 whose wait is known and
    at most ``cap``, a request :func:`retry_safe` whose body can be sent again, and fewer
    than ``retries`` retries made."""
    return (
        status in RETRY_STATUSES
        and wait is not None
        and wait <= cap
        and safe
        and replayable
        and attempts < retries
    )


def retry_sleep(wait: float) -> float:
    """How long to sleep before a retry ``wait`` seconds away: the wait and a jitter of up
    to a quarter of it (so callers refused together do not come back together)."""
    return wait + random.uniform(0, 0.25 * (wait or 0.1))  # noqa: S311 - jitter, not secrets


def may_renew(status: int, *, renewable: bool, replayable: bool, renewed: bool) -> bool:
    """True when a ``status`` answer is renewed once and the request sent again: a 401 to
    a renewable credential (OAuth, app-minted, two-step) not renewed yet for this request,
    whose body can be sent again."""
    return status == 401 and renewable and replayable and not renewed


def should_verify(status: int, *, renewable: bool) -> bool:
    """True when a refusal (401 or 403) of a static credential (an API key, a password) is
    checked with its verification request (a refused one is marked ``needs_reauth``)."""
    return status in (401, 403) and not renewable


def follows_redirect(method: str, status: int, location: str | None) -> bool:
    """True for a redirect that is followed (if its ``location`` is allowed): a 301, 302,
    303, 307 or 308 with a ``Location`` answering a GET or HEAD."""
    return status in _REDIRECT_STATUSES and bool(location) and method.upper() in REDIRECT_METHODS
