"""Server-rendered HTML pages: the templates, the deployment's branding, and the headers every
page is sent with.

Pages carry no script and load nothing from elsewhere: the stylesheet sits inline and the
Content-Security-Policy allows exactly that stylesheet (by its hash), the branding logo's
origin for images, and forms posted to this service only.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse

__all__ = ["DEFAULT_BRANDING", "Branding", "Pages"]

_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
# A host[:port] that can go into the CSP as it is (no user info, spaces or separators).
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?$")


@dataclass(frozen=True, slots=True)
class Branding:
    """What the pages show of the product: its name, a logo (an http(s) URL) and the accent
    colour (``#rrggbb``)."""

    product_name: str = "oauthvault"
    logo_url: str | None = None
    accent_color: str = "#3451b2"

    def __post_init__(self) -> None:
        if not _COLOUR.match(self.accent_color):
            raise ValueError("accent_color must be #rrggbb")
        if self.logo_url is not None:
            parts = urlsplit(self.logo_url)
            if parts.scheme not in ("http", "https") or not _HOST.match(parts.netloc):
                raise ValueError("logo_url must be an absolute http(s) URL")
        if not self.product_name.strip() or len(self.product_name) > 60:
            raise ValueError("product_name must be 1 to 60 characters")


DEFAULT_BRANDING = Branding()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Pages:
    """Renders the service's templates into responses with the page headers."""

    def __init__(self, branding: Branding = DEFAULT_BRANDING) -> None:
        self.branding = branding
        self._environment = Environment(
            loader=PackageLoader("oauthvault.service", "templates"),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        style = self._environment.get_template("style.css").render(accent=branding.accent_color)
        self._style = Markup(style)  # noqa: S704 - our stylesheet; the colour is checked above
        digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
        images = "'self'" + (f" {_origin(branding.logo_url)}" if branding.logo_url else "")
        self._policy = (
            f"default-src 'none'; style-src 'sha256-{digest}'; img-src {images}; "
            "base-uri 'none'; frame-ancestors 'none'; form-action"
        )

    def content_security_policy(self, *, form_targets: str = "'self'") -> str:
        """The policy a page is sent with; ``form_targets`` are where its forms may go
        (including where a form's answer redirects)."""
        return f"{self._policy} {form_targets}"

    def render(
        self,
        template: str,
        status: int = 200,
        *,
        form_targets: str = "'self'",
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """``template`` rendered with ``context`` (and the branding), never cached."""
        body = self._environment.get_template(template).render(
            brand=self.branding, style=self._style, **context
        )
        return HTMLResponse(
            body,
            status_code=status,
            headers={
                "Cache-Control": "no-store",
                "Content-Security-Policy": self.content_security_policy(form_targets=form_targets),
                "X-Content-Type-Options": "nosniff",
                "X-Frame-Options": "DENY",
                "Referrer-Policy": "no-referrer",
                **(headers or {}),
            },
        )
