"""The connect link of a GitHub App: install the app, and keep the installation it made.

The link opens a page asking the end user to go on (as every connect link's first page:
:mod:`oauthvault.service.links`); its POST sends the browser to the app's install page
(``https://github.com/apps/<app_slug>/installations/new``) with a ``state`` that is a new
one-time link only this browser can bring back. GitHub sends the browser back to the
app's *user authorization callback URL*, ``{public_url}/oauth/github-app/callback``, with
``installation_id``, ``setup_action`` and, because the app asks for user authorization
during installation, a ``code``.

GitHub warns that ``installation_id`` can be spoofed
(https://docs.github.com/en/apps/creating-github-apps/registering-a-github-app/about-the-setup-url):
a connection never takes it on trust. The ``code`` is exchanged for the installing user's
token (the app's ``client_id`` and ``client_secret``), which must list the installation
among those the user can reach (``GET /user/installations``); the user's token is then
dropped, never stored. Only then is the installation stored as the connection (its first
installation token minted and verified), and the flow ends like every connect flow: on
the return URL or the result page. A callback without a code, or with an installation the
user cannot reach, ends ``unverified_installation``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from oauthvault.errors import VaultError
from oauthvault.failures import classify
from oauthvault.oauth.app_tokens import github_user_has_installation, github_user_token
from oauthvault.oauth.token_request import run_async
from oauthvault.providers.credential_apps import CredentialApp
from oauthvault.providers.credentials import (
    CredentialSpec,
    credential_entry,
    load_credential_catalog,
)
from oauthvault.providers.minting import GitHubApp, parse_github_app
from oauthvault.service.connect_pages import BINDING_COOKIE, ConnectPages
from oauthvault.service.links import ConnectLink, ConnectLinks
from oauthvault.service.outcomes import outcome_of_store
from oauthvault.vault import AsyncOAuthTokenCache

__all__ = ["GitHubInstalls", "github_apps"]

logger = logging.getLogger("oauthvault.service")
_TIMEOUT = 10.0


def github_apps(apps: Mapping[str, CredentialApp]) -> frozenset[str]:
    """The configured apps whose connect links install a GitHub App."""
    catalog = load_credential_catalog()
    return frozenset(name for name in apps if name in catalog and catalog[name].app == "github_app")


class GitHubInstalls:
    """Starts and ends a GitHub App's installation flow (see the module docstring)."""

    def __init__(
        self,
        vault: AsyncOAuthTokenCache,
        links: ConnectLinks,
        pages: ConnectPages,
        apps: dict[str, CredentialApp],
        *,
        public_url: str,
    ) -> None:
        self._vault = vault
        self._links = links
        self._pages = pages
        self._apps = apps
        self._base = public_url.rstrip("/")

    def spec(self, provider: str) -> CredentialSpec | None:
        """The catalog entry of ``provider`` when it is a GitHub App this deployment
        configures, else ``None``."""
        spec = credential_entry(provider)
        if spec is None or spec.app != "github_app" or provider not in self._apps:
            return None
        return spec

    def _app(self, provider: str) -> tuple[CredentialSpec, CredentialApp, GitHubApp]:
        spec = self.spec(provider)
        assert spec is not None  # noqa: S101 - the router sends only GitHub Apps here
        app = self._apps[provider]
        github = parse_github_app(app.github_table(spec), provider)
        return spec, app, github

    async def show(self, binding: str, link: ConnectLink) -> Response:
        """The page asking to go on to GitHub; its POST carries a new one-time link only
        this browser can post."""
        spec, _, github = self._app(link.provider)
        token, _ = await self._links.create(link, browser=binding)
        install = github.install_url or "https:"
        page = self._pages.pages.render(
            "connect/confirm.html",
            form_targets=f"'self' {urlsplit(install).scheme or 'https'}:",
            title=f"Connect {spec.display_name}",
            provider_name=spec.display_name,
            workspace_name=link.workspace_name,
            action=f"{self._base}/oauth/{link.provider}/authorize",
            link=token,
            return_url=link.return_url,
        )
        return self._pages.bind(page, binding)

    async def begin(self, binding: str, link: ConnectLink) -> Response:
        """Send the browser to the app's install page; the ``state`` is a new one-time
        link only this browser can bring back."""
        _, _, github = self._app(link.provider)
        if github.install_url is None:
            logger.warning("%s: no app_slug or install_url: cannot install", link.provider)
            return self._pages.ended(link.provider, "invalid_request", link.return_url)
        state, _ = await self._links.create(link, browser=binding)
        url = f"{github.install_url}?{urlencode({'state': state})}"
        response = RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
        return self._pages.bind(response, binding)

    async def finish(self, request: Request, provider: str) -> Response:
        """The callback GitHub sends the browser to after the installation."""
        query = request.query_params
        link = await self._links.take(
            query.get("state", ""), provider, browser=request.cookies.get(BINDING_COOKIE, "")
        )
        if link is None:
            return self._pages.finished(provider, "sign_in_expired")
        installation = query.get("installation_id", "")
        code = query.get("code", "")
        if not installation.isascii() or not installation.isdigit() or len(installation) > 20:
            return self._pages.ended(provider, "invalid_request", link.return_url)
        if not code or not await self._installed_by_user(provider, code, installation):
            logger.info("%s: installation not confirmed by the installing user", provider)
            return self._pages.ended(provider, "unverified_installation", link.return_url)
        try:
            await self._vault.store_credentials(
                provider,
                link.workspace_id,
                link.actor_id,
                {},
                params={**link.params, "installation_id": installation},
                source=request.client.host if request.client is not None else None,
            )
        except VaultError as error:
            code_out = outcome_of_store(classify(error)) or "invalid_input"
            logger.info("%s: installation not stored: %s", provider, code_out)
            return self._pages.ended(provider, code_out, link.return_url)
        logger.info("%s: installation stored", provider)
        return self._pages.ended(provider, "connected", link.return_url)

    async def _installed_by_user(self, provider: str, code: str, installation: str) -> bool:
        """Whether the user the ``code`` stands for can reach ``installation``."""
        _, app, github = self._app(provider)
        client = app.github_user_client()
        if client is None:
            logger.warning(
                "%s: no client_id/client_secret: the installation cannot be confirmed", provider
            )
            return False
        async with httpx.AsyncClient(timeout=_TIMEOUT) as http:
            user_token = await run_async(github_user_token(client[2], *client[:2], code), http)
            if user_token is None:
                return False
            listed = await run_async(
                github_user_has_installation(github, user_token, installation), http
            )
        return listed is True
