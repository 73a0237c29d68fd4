"""Minting a short-lived token from a non-OAuth credential: the step that takes the place
of the refresh grant for ``app`` and ``two_step`` connections (run under the same lease,
so exactly once across processes).

Which exchange runs is the catalog entry's: a GitHub App installation token, a Google
service-account token (RFC 7523), or the entry's two-step ``token_request``
(:mod:`oauthvault.oauth.app_tokens`), with the app's settings
(:class:`~oauthvault.providers.credential_apps.CredentialApp`). Sans-I/O, like
:mod:`oauthvault.oauth.token_request`: an :data:`Exchange` generator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime

from oauthvault.errors import ConfigError
from oauthvault.models import Credentials
from oauthvault.oauth.app_tokens import (
    github_installation_token,
    service_account_token,
    two_step_token,
)
from oauthvault.oauth.token_request import Exchange, GrantResult
from oauthvault.providers.credential_apps import CredentialApp
from oauthvault.providers.credentials import CredentialSpec
from oauthvault.providers.minting import (
    TwoStepRequest,
    parse_github_app,
    parse_service_account_app,
    parse_two_step,
)
from oauthvault.providers.params import pick_params

__all__ = ["mint_token", "two_step_request"]


def two_step_request(spec: CredentialSpec, app: CredentialApp | None) -> TwoStepRequest:
    """The entry's ``token_request``, at the app's ``token_url`` when it sets one.

    Raises:
        ConfigError: the entry has none, or it is malformed.
    """
    where = f"credentials.toml: providers.{spec.name}.token_request"
    if spec.token_request is None:
        raise ConfigError(where, "is required for a two_step entry")
    override = None if app is None else app.settings.get("token_url")
    request = parse_two_step(
        spec.token_request,
        where,
        fields={each.name: each.secret for each in spec.fields},
        params=[param.name for param in spec.connection_params],
    )
    if isinstance(override, str):
        request = dataclasses.replace(request, url=override)
    return request


def _exchange(
    spec: CredentialSpec,
    app: CredentialApp | None,
    fields: Credentials,
    params: Mapping[str, str],
    clock: Callable[[], datetime],
) -> Exchange:
    where = f"credentials.{spec.name}"
    if spec.auth == "two_step":
        values = {each.name: fields.get(each.name, "") for each in spec.fields}
        return two_step_token(two_step_request(spec, app), values, params, clock=clock)
    if spec.app == "github_app":
        if app is None:
            raise ConfigError(where, "is required: the GitHub App's app_id and private_key")
        installation = params.get("installation_id")
        if not installation:
            raise ConfigError("params.installation_id", "is required")
        github = parse_github_app(app.github_table(spec), where)
        return github_installation_token(github, installation, clock=clock)
    if spec.app == "google_service_account":
        if app is None:
            raise ConfigError(where, "is required: the scopes service-account tokens are for")
        accounts = parse_service_account_app(app.settings, where)
        own = fields.get("service_account_json")
        account = accounts.account(own, fields.get("subject"))
        return service_account_token(account, clock=clock, own=own is not None)
    raise ConfigError(where, f"mints no token ({spec.auth})")


def mint_token(
    spec: CredentialSpec,
    app: CredentialApp | None,
    fields: Credentials,
    params: Mapping[str, str],
    clock: Callable[[], datetime],
) -> Exchange:
    """A new token for a connection of ``spec`` (with the app's settings ``app``), and the
    connection parameters its answer carries (Tableau's site id). A configuration that
    cannot mint is a ``config`` result, never an exception."""
    try:
        exchange = _exchange(spec, app, fields, params, clock)
    except ConfigError as error:
        return GrantResult("config", error="invalid_configuration", description=str(error))
    result = yield from exchange
    if result.outcome != "ok" or result.response is None:
        return result
    found = pick_params(
        spec.connection_params, "token", result.response, provider=spec.name, lenient=True
    )
    return dataclasses.replace(result, params=found) if found else result
