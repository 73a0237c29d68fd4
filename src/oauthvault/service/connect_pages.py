"""What every browser route of a connect flow shares, whatever the provider's kind (OAuth, or
a credential typed into a form): the outcome pages, the end of a flow (the return URL with
its outcome, or the result page), and the browser binding cookie a flow's one-time values
are tied to. One place for each, so an OAuth callback and a credential form end alike.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from oauthvault.service.outcomes import OUTCOMES
from oauthvault.service.pages import Pages

__all__ = ["BINDING_COOKIE", "OUTCOME_COOKIE", "ConnectPages"]

BINDING_COOKIE = "oauthvault_binding"
#: How the last connect flow in this browser ended (``<provider>.<outcome code>``, nothing
#: secret), for the result page a flow's end redirects to.
OUTCOME_COOKIE = "oauthvault_outcome"
_OUTCOME_MAX_AGE = 600
_BINDING_MAX_AGE = 86_400


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = (parts.query + "&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class ConnectPages:
    """The pages and redirects that end a connect flow. ``display_name`` names a provider
    as people know it (an OAuth app's, or a credential catalog entry's)."""

    def __init__(self, pages: Pages, public_url: str, display_name: Callable[[str], str]) -> None:
        self.pages = pages
        self._base = public_url.rstrip("/")
        self._secure = public_url.startswith("https://")
        self.display_name = display_name

    def outcome(
        self, code: str, provider: str, *, return_url: str | None = None, status: int | None = None
    ) -> Response:
        """The page saying how a flow ended (or why it could not go on)."""
        outcome = OUTCOMES[code]
        product = self.pages.branding.product_name
        name = self.display_name(provider) if code != "unknown_provider" else ""
        title, message, advice = outcome.words(name, product)
        return self.pages.render(
            "connect/outcome.html",
            status or outcome.status,
            title=title,
            message=message,
            advice=advice,
            tone=outcome.tone,
            code=None if code in ("connected", "no_outcome") else code,
            return_url=return_url,
        )

    def finished(self, provider: str, code: str) -> Response:
        """Off the flow's last URL (a callback's code and state, a posted form) to the
        result page, which shows ``code`` (kept in a short-lived cookie)."""
        response = RedirectResponse(
            f"{self._base}/oauth/{provider}/result",
            status_code=303,
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )
        response.set_cookie(
            OUTCOME_COOKIE,
            f"{provider}.{code}",  # the result page of another provider shows nothing
            max_age=_OUTCOME_MAX_AGE,
            path="/oauth/",
            httponly=True,
            secure=self._secure,
            samesite="lax",
        )
        return response

    def ended(self, provider: str, code: str, return_url: str | None) -> Response:
        """The end of a flow: back to ``return_url`` with ``oauthvault_status`` (and
        ``oauthvault_error``), else to the result page."""
        if return_url is None:
            return self.finished(provider, code)
        outcome = {"oauthvault_status": "connected", "oauthvault_provider": provider}
        if code != "connected":
            outcome = {**outcome, "oauthvault_status": "error", "oauthvault_error": code}
        return RedirectResponse(_with_query(return_url, **outcome), status_code=303)

    def bind(self, response: Response, binding: str) -> Response:
        """Set (or renew) the browser binding cookie a flow's one-time values are tied to."""
        response.set_cookie(
            BINDING_COOKIE,
            binding,
            max_age=_BINDING_MAX_AGE,
            path="/oauth/",
            httponly=True,
            secure=self._secure,
            samesite="lax",
        )
        return response

    @staticmethod
    def binding_of(request: Request) -> str:
        """The browser's binding cookie, or a new one (for :meth:`bind` to set)."""
        return request.cookies.get(BINDING_COOKIE) or secrets.token_urlsafe(32)
