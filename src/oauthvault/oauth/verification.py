"""Asking a provider whether a credential works: the catalog entry's verification request.

Written once, as a generator that yields one :class:`HttpRequest` and is sent its
:class:`HttpResponse` (no I/O here); ``run_sync`` and ``run_async`` drive it. The
credential goes where the catalog places it and nowhere else: never into a log line, a
result or an exception.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Literal

from oauthvault.oauth.api_calls import with_query
from oauthvault.oauth.token_request import HttpRequest, HttpResponse
from oauthvault.providers.credentials import CredentialSpec, VerifyRequest

__all__ = ["REFUSED_STATUSES", "Verdict", "verify_credential"]

#: What a provider answers a credential it does not accept with.
REFUSED_STATUSES = frozenset({401, 403})

Verification = Generator[HttpRequest, HttpResponse, "Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a verification came to: ``valid``; ``refused`` (401 or 403: the credential
    is wrong or revoked); ``unavailable`` (no answer, or one that says nothing about the
    credential: a 5xx, a 429, an unexpected status), with the status or failure."""

    outcome: Literal["valid", "refused", "unavailable", "skipped"]
    detail: str = ""


def verify_credential(
    spec: CredentialSpec,
    credentials: Mapping[str, str],
    params: Mapping[str, str],
    access_token: str | None = None,
) -> Verification:
    """Send the entry's verification request with the credential placed as the catalog
    says (``access_token``: the token minted for an ``app`` or ``two_step`` connection);
    ``skipped`` when the entry has none."""
    request = spec.verify
    if request is None:
        return Verdict("skipped", "the provider documents no verification request")
    answer = yield _placed(spec, request, credentials, params, access_token)
    return verdict_of(answer, request.ok)


def _placed(
    spec: CredentialSpec,
    request: VerifyRequest,
    credentials: Mapping[str, str],
    params: Mapping[str, str],
    access_token: str | None,
) -> HttpRequest:
    """``request`` (the entry's verification or revocation) on the API base URL, the
    credential placed as the catalog says."""
    placement = spec.placement(credentials, params, access_token)
    url = with_query(spec.url(request.path, params, credentials), placement.query)
    return HttpRequest(request.method, url, headers=_with_accept(placement.headers))


def _with_accept(headers: Mapping[str, str]) -> dict[str, str]:
    """The placement's headers, with ``Accept: application/json`` unless the catalog
    names an Accept header itself (in any case: Klaviyo's ``accept``)."""
    if any(name.lower() == "accept" for name in headers):
        return dict(headers)
    return {"Accept": "application/json", **headers}


def verdict_of(answer: HttpResponse, ok: int) -> Verdict:
    """The verdict an answer gives (pure)."""
    if answer.failure is not None:
        return Verdict("unavailable", f"no answer ({answer.failure})")
    if answer.status == ok or (ok == 200 and 200 <= answer.status < 300):
        return Verdict("valid")
    if answer.status in REFUSED_STATUSES:
        return Verdict("refused", f"the provider answered {answer.status}")
    return Verdict("unavailable", f"the provider answered {answer.status}")


def revoke_credential(
    spec: CredentialSpec,
    credentials: Mapping[str, str],
    params: Mapping[str, str],
    access_token: str | None = None,
) -> Generator[HttpRequest, HttpResponse, bool | None]:
    """Send the entry's revocation request (a GitHub installation token's ``DELETE``):
    True when the provider confirmed it, False when it refused or failed, ``None`` when
    the entry documents none."""
    request = spec.revocation
    if request is None:
        return None
    answer = yield _placed(spec, request, credentials, params, access_token)
    return answer.failure is None and 200 <= answer.status < 300
