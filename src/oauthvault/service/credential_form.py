"""The connect link's page for a provider that takes a typed credential (``api_key``,
``basic`` and ``fields`` entries of the credential catalog): a form instead of a redirect.

The form shows each field of the catalog entry with its label, a secret one masked
(``type=password``, never autocompleted), the field's pattern for the browser to check
(when it translates to an HTML pattern: :mod:`oauthvault.service.html_pattern`), a "where
do I find this" link, and the link's missing required connection parameters (a Zendesk
subdomain) on the same form. Its POST is checked again here, verified with the provider and
stored by the vault; the flow then ends like an OAuth flow: on the return URL with its
outcome, or on the result page.

One-time use, as every connect link (:mod:`oauthvault.service.links`): opening the link
uses it up and the form carries a new one-time link only this browser can post (the page's
CSRF token). A value breaking a rule or a credential the provider refuses shows the form
again (status 422 or 400) under a new one-time link with the same expiry, the error next to
the field or at the top, the values of non-secret fields kept and secret ones never sent
back; after :data:`MAX_REFUSED` refused credentials the flow ends ``invalid_credentials``,
so a link cannot be used to try key after key. A stored credential ends the link. The
credential travels only in the POST body: never in a URL, a cookie, a log line or a page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from starlette.responses import Response

from oauthvault.errors import InvalidCredentials, InvalidInput, VaultError
from oauthvault.failures import classify
from oauthvault.models import CredentialKind
from oauthvault.providers.credentials import (
    CredentialSpec,
    credential_entry,
)
from oauthvault.providers.params import ConnectionParam, missing_link_params
from oauthvault.service.connect_pages import ConnectPages
from oauthvault.service.html_pattern import html_pattern
from oauthvault.service.links import ConnectLink, ConnectLinks
from oauthvault.service.outcomes import outcome_of_store
from oauthvault.vault import AsyncOAuthTokenCache

__all__ = ["FORM_KINDS", "MAX_REFUSED", "CredentialForms"]

logger = logging.getLogger("oauthvault.service")

#: The credential kinds a connect link asks for with a form (an ``app`` or ``two_step``
#: credential is the app's own business: ``PUT /v1/credentials``).
FORM_KINDS: frozenset[CredentialKind] = frozenset({"api_key", "basic", "fields"})
#: Credentials the provider may refuse on one link before its flow ends.
MAX_REFUSED = 5


@dataclass(frozen=True, slots=True)
class _Input:
    """One input of the form, as the template shows it."""

    id: str
    name: str
    label: str
    secret: bool
    required: bool
    value: str
    example: str | None
    pattern: str | None
    help_url: str | None
    error: str | None


class CredentialForms:
    """Shows a credential connect link's form and takes its POST (see the module docstring)."""

    def __init__(
        self,
        vault: AsyncOAuthTokenCache,
        links: ConnectLinks,
        pages: ConnectPages,
        *,
        public_url: str,
    ) -> None:
        self._vault = vault
        self._links = links
        self._pages = pages
        self._base = public_url.rstrip("/")

    @staticmethod
    def spec(provider: str) -> CredentialSpec | None:
        """The catalog entry of ``provider`` when its connect link is a form, else ``None``."""
        spec = credential_entry(provider)
        return spec if spec is not None and spec.auth in FORM_KINDS else None

    async def show(self, binding: str, link: ConnectLink) -> Response:
        """The empty form for ``link`` (just taken), posted back under a new one-time link
        only this browser can post."""
        return await self._form(binding, link, {}, {})

    async def submit(
        self, binding: str, link: ConnectLink, form: Mapping[str, str], client: str | None
    ) -> Response:
        """Check the posted form, verify and store the credential, and end the flow; or show
        the form again saying what is wrong (``link`` was taken: a new one is issued)."""
        spec = self.spec(link.provider)
        if spec is None:  # pragma: no cover - the router only sends form providers here
            return self._pages.outcome("unknown_provider", link.provider)
        missing = _missing(spec, link)
        given = {f"params.{p.name}": form.get(f"params.{p.name}", "").strip() for p in missing}
        given |= {
            f"credentials.{f.name}": form.get(f"credentials.{f.name}", "").strip()
            for f in spec.fields
        }
        errors = _errors(spec, missing, given)
        if errors:
            return await self._form(binding, link, given, errors, status=422)
        params = {**link.params, **{p.name: given[f"params.{p.name}"] for p in missing}}
        credentials = {
            f.name: given[f"credentials.{f.name}"]
            for f in spec.fields
            if given[f"credentials.{f.name}"]
        }
        try:
            await self._vault.store_credentials(
                link.provider,
                link.workspace_id,
                link.actor_id,
                credentials,
                params=params,
                source=client,
            )
        except InvalidCredentials:
            refused = replace(link, attempts=link.attempts + 1)
            logger.info(
                "credential form for %s: refused by the provider (%d of %d)",
                link.provider,
                refused.attempts,
                MAX_REFUSED,
            )
            if refused.attempts >= MAX_REFUSED:
                return self._pages.ended(link.provider, "invalid_credentials", link.return_url)
            error = (
                f"{spec.display_name} did not accept this {_labels(spec)}. Check that you "
                "copied it whole, then try again."
            )
            return await self._form(binding, refused, given, {"": error}, status=400)
        except InvalidInput as error:
            if error.argument in given:  # a rule the page could not check (one line)
                errors = {error.argument: _invalid(spec, error.argument)}
                return await self._form(binding, link, given, errors, status=422)
            return self._end_failed(link, error)
        except VaultError as error:
            return self._end_failed(link, error)
        logger.info("credential form for %s: stored", link.provider)
        return self._pages.ended(link.provider, "connected", link.return_url)

    def _end_failed(self, link: ConnectLink, error: VaultError) -> Response:
        code = outcome_of_store(classify(error))
        if code is None:
            logger.warning("credential form for %s failed: %s", link.provider, type(error).__name__)
            code = "invalid_input"
        else:
            logger.info("credential form for %s ended with %s", link.provider, code)
        if code == "unknown_provider":
            return self._pages.outcome(code, link.provider)
        return self._pages.ended(link.provider, code, link.return_url)

    async def _form(
        self,
        binding: str,
        link: ConnectLink,
        given: Mapping[str, str],
        errors: Mapping[str, str],
        status: int = 200,
    ) -> Response:
        spec = self.spec(link.provider)
        assert spec is not None  # noqa: S101 - checked by the callers
        token, _ = await self._links.create(link, browser=binding)
        inputs = [
            _Input(
                id=f"param-{param.name}",
                name=f"params.{param.name}",
                label=param.label,
                secret=False,
                required=True,
                value=given.get(f"params.{param.name}", ""),
                example=param.example,
                pattern=html_pattern(param.pattern),
                help_url=None,
                error=errors.get(f"params.{param.name}"),
            )
            for param in _missing(spec, link)
        ]
        inputs += [
            _Input(
                id=f"credential-{field.name}",
                name=f"credentials.{field.name}",
                label=field.label,
                secret=field.secret,
                required=field.required,
                # A secret typed before is never sent back, not even to the same page.
                value="" if field.secret else given.get(f"credentials.{field.name}", ""),
                example=field.example,
                pattern=html_pattern(field.pattern),
                help_url=field.help_url or spec.docs_url,
                error=errors.get(f"credentials.{field.name}"),
            )
            for field in spec.fields
        ]
        page = self._pages.pages.render(
            "connect/credentials.html",
            status,
            form_targets=_form_targets(link.return_url),
            title=f"Connect {spec.display_name}",
            provider_name=spec.display_name,
            workspace_name=link.workspace_name,
            action=f"{self._base}/oauth/{link.provider}/authorize",
            link=token,
            inputs=inputs,
            form_error=errors.get(""),
            return_url=link.return_url,
        )
        return self._pages.bind(page, binding)


def _missing(spec: CredentialSpec, link: ConnectLink) -> tuple[ConnectionParam, ...]:
    """The required link parameters the link did not bring: asked for on the form."""
    return missing_link_params(spec.connection_params, link.params, fixed={})


def _errors(
    spec: CredentialSpec, missing: tuple[ConnectionParam, ...], given: Mapping[str, str]
) -> dict[str, str]:
    """What is wrong with the posted values, by input name (values are never quoted)."""
    errors: dict[str, str] = {}
    for param in missing:
        name = f"params.{param.name}"
        if not param.accepts(given[name]):
            example = f" (for example {param.example})" if param.example else ""
            errors[name] = f"Enter a valid {param.label}{example}."
    for field in spec.fields:
        name = f"credentials.{field.name}"
        if not given[name]:
            if field.required:
                errors[name] = f"Enter your {field.label}."
        elif not field.accepts(given[name]):
            errors[name] = _invalid(spec, name)
    return errors


def _invalid(spec: CredentialSpec, name: str) -> str:
    kind, _, short = name.partition(".")
    if kind == "params":
        param = next((p for p in spec.connection_params if p.name == short), None)
        return f"Enter a valid {param.label if param else short}."
    field = spec.field(short)
    label = field.label if field is not None else short
    return f"This is not a valid {label}: check that you copied it whole."


def _labels(spec: CredentialSpec) -> str:
    """The secret fields' labels, as a sentence names them ("API key", "API key and
    application key")."""
    labels = [f.label for f in spec.fields if f.secret] or [f.label for f in spec.fields]
    if len(labels) == 1:
        return labels[0]
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def _form_targets(return_url: str | None) -> str:
    """Where the form's POST may lead: here (the result page, the form again) and the
    return URL's origin (the flow's end redirects there)."""
    if return_url is None:
        return "'self'"
    parts = urlsplit(return_url)
    return f"'self' {parts.scheme}://{parts.netloc}"
