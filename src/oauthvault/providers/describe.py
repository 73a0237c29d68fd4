"""What the catalog knows about a provider, as one summary row or in plain words (pure).

Used by ``oauthvault providers list/show`` and ``GET /v1/providers``; nothing here is a
secret (the catalog holds none, and configured apps are only ever named).
"""

from __future__ import annotations

from typing import Any

from oauthvault.providers.credentials import CredentialSpec
from oauthvault.providers.spec import ProviderSpec

__all__ = [
    "auth_style",
    "credential_style",
    "credential_summary",
    "describe",
    "describe_credential",
    "summary",
]

_REFRESH_WORDS = {
    "none": "no refresh tokens: tokens are renewed by connecting again",
    "static": "refresh tokens stay the same across refreshes",
    "rotating": "every refresh returns a new refresh token (the old one is retired)",
}


def auth_style(spec: ProviderSpec) -> str:
    """The grant and client authentication, e.g. ``authorization_code+pkce/client_secret_basic``."""
    grant = "authorization_code+pkce" if spec.pkce else "authorization_code"
    return f"{grant}/{spec.token_endpoint_auth_method}"


def summary(spec: ProviderSpec) -> dict[str, Any]:
    """One row: name, display name, auth style, refreshes, revokes, connection parameters."""
    return {
        "name": spec.name,
        "display_name": spec.display_name,
        "auth_style": auth_style(spec),
        "refreshes": spec.refresh_tokens != "none",
        "revokes": spec.revocation_endpoint is not None,
        "connection_params": [
            {"name": p.name, "label": p.label, "source": p.source, "required": p.required}
            for p in spec.connection_params
        ],
        "docs_url": spec.docs_url,
    }


def credential_style(spec: CredentialSpec) -> str:
    """Where a credential goes on requests, e.g. ``header:Authorization``, ``basic``,
    ``query:api_key`` (joined with ``+``); for minted kinds, what mints the token."""
    if spec.minted:
        return f"{spec.auth}:{spec.app}" if spec.app else spec.auth
    parts = [f"header:{name}" for name, _ in spec.headers]
    if spec.basic is not None:
        parts.append("basic")
    parts += [f"query:{name}" for name, _ in spec.query]
    return "+".join(parts) or "-"


def credential_summary(spec: CredentialSpec) -> dict[str, Any]:
    """One row of a credential catalog entry, shaped like :func:`summary`'s, with its
    ``auth`` kind (``api_key``, ``basic``, ...), its fields (never a value: the catalog
    holds none) and whether it is verified when stored."""
    return {
        "name": spec.name,
        "display_name": spec.display_name,
        "auth": spec.auth,
        "auth_style": credential_style(spec),
        "refreshes": spec.minted,
        "revokes": spec.revocation is not None,
        "verifies": spec.verify is not None,
        "fields": [
            {"name": f.name, "label": f.label, "secret": f.secret, "required": f.required}
            for f in spec.fields
        ],
        "connection_params": [
            {"name": p.name, "label": p.label, "source": p.source, "required": p.required}
            for p in spec.connection_params
        ]
        + [
            {"name": p.name, "label": p.label, "source": "credential", "required": True}
            for p in spec.derived_params
        ],
        "docs_url": spec.docs_url,
    }


def _param_line(spec: ProviderSpec, name: str) -> str:
    param = spec.param(name)
    assert param is not None  # noqa: S101 - names come from the spec
    where = {
        "link": "given when the connect link is made",
        "callback": f"read from the callback's {param.path}",
        "token": f"read from the token answer's {param.path}",
        "identity": f"read from {spec.identity_endpoint} ({param.path}) after connect",
    }[param.source]
    parts = [f"  {param.name}: {param.label}, {where}"]
    if param.required:
        parts.append("required")
    if param.default is not None:
        parts.append(f"default {param.default}")
    if param.example is not None:
        parts.append(f"e.g. {param.example}")
    return ", ".join(parts)


def describe(spec: ProviderSpec) -> list[str]:
    """Everything the catalog says about ``spec``, one plain sentence per line."""
    lines = [
        f"{spec.display_name} ({spec.name})",
        f"authorize at: {spec.authorization_endpoint}",
        f"tokens from:  {spec.token_endpoint}"
        + (f" (refresh at {spec.refresh_endpoint})" if spec.refresh_endpoint else ""),
        f"client authentication: {spec.token_endpoint_auth_method}; "
        f"token request body: {spec.token_body}",
        f"PKCE: {'used (S256)' if spec.pkce else 'not used'}",
        f"default scopes: {' '.join(spec.default_scopes) or '(none: set on the app)'}"
        f" (separated by {'a comma' if spec.scope_separator == ',' else 'a space'})",
        f"refresh: {_REFRESH_WORDS[spec.refresh_tokens]}",
    ]
    if spec.extra_authorize_params:
        extra = ", ".join(f"{k}={v}" for k, v in spec.extra_authorize_params.items())
        lines.append(f"extra authorization parameters: {extra}")
    if spec.token_params:
        lines.append(
            "extra token parameters: " + ", ".join(f"{k}={v}" for k, v in spec.token_params.items())
        )
    if spec.refresh_params is not None:
        shown = ", ".join(f"{k}={v}" for k, v in spec.refresh_params.items()) or "none"
        lines.append(f"extra refresh parameters: {shown}")
    if spec.expiry == "introspection":
        lines.append(
            f"expiry: not in the answer, read by introspection at {spec.introspection_endpoint}"
        )
    if spec.access_token_lifetime:
        lines.append(f"typical access-token lifetime: {spec.access_token_lifetime} s")
    if spec.refresh_token_idle_expiry_days:
        lines.append(
            f"an unused refresh token expires after {spec.refresh_token_idle_expiry_days} days"
        )
    if spec.dead_grant_errors:
        lines.append("a dead grant also answers: " + ", ".join(spec.dead_grant_errors))
    if spec.revocation_endpoint is None:
        lines.append("revocation: the provider documents no revocation endpoint")
    elif spec.revocation_method == "rfc7009":
        lines.append(f"revocation: RFC 7009 at {spec.revocation_endpoint}")
    else:
        lines.append(f"revocation: {spec.revocation_note or spec.revocation_endpoint}")
    if spec.userinfo_endpoint:
        lines.append(f"user info: {spec.userinfo_endpoint}")
    if spec.issuer:
        lines.append(f"OpenID Connect issuer: {spec.issuer}")
    if spec.api_base_url:
        also = f" (also {', '.join(spec.api_hosts)})" if spec.api_hosts else ""
        lines.append(f"API: {spec.api_base_url}{also}")
    if spec.api_headers:
        sent = ", ".join(f"{name}: {value}" for name, value in spec.api_headers.items())
        lines.append(f"API headers: {sent}")
    if spec.rate_limit_headers:
        reset = spec.rate_limit_reset
        when = f" (reset: {reset.header}, {reset.format})" if reset else ""
        lines.append(f"rate-limit headers: {', '.join(spec.rate_limit_headers)}{when}")
    if spec.connection_params:
        lines.append("connection parameters:")
        lines.extend(_param_line(spec, p.name) for p in spec.connection_params)
    if spec.notes:
        lines.append(f"notes: {spec.notes}")
    lines.append(f"docs: {spec.docs_url}")
    return lines


def describe_credential(spec: CredentialSpec) -> list[str]:
    """Everything the credential catalog says about ``spec``, one plain sentence per line."""
    lines = [
        f"{spec.display_name} ({spec.name})",
        f"auth: {spec.auth} (placed as {credential_style(spec)})",
        f"API: {spec.api_base_url}",
        "fields:",
    ]
    for each in spec.fields:
        parts = [f"  {each.name}: {each.label}", "secret" if each.secret else "not secret"]
        parts.append("required" if each.required else "optional")
        if each.example is not None and not each.secret:
            parts.append(f"e.g. {each.example}")
        if each.help_url:
            parts.append(f"found at {each.help_url}")
        lines.append(", ".join(parts))
    if spec.connection_params or spec.derived_params:
        lines.append("connection parameters:")
        for param in spec.connection_params:
            extra = ", required" if param.required else ""
            example = f", e.g. {param.example}" if param.example else ""
            lines.append(f"  {param.name}: {param.label}{extra}{example}")
        for derived in spec.derived_params:
            lines.append(f"  {derived.name}: {derived.label}, taken from {derived.field}")
    if spec.verify is None:
        lines.append("verification: the provider documents no verification request")
    else:
        lines.append(f"verification: {spec.verify.method} {spec.verify.path}")
    if spec.revocation is not None:
        lines.append(f"revocation: {spec.revocation.method} {spec.revocation.path}")
    if spec.notes:
        lines.append(f"notes: {spec.notes}")
    lines.append(f"docs: {spec.docs_url}")
    return lines
