"""The OpenAPI document, completed so that it says exactly what the service does.

FastAPI derives the operations, parameters and success bodies from the routes. This module
adds what it cannot know: the rules ids and tokens follow (so a schema-valid request is
never refused for its shape), every error each operation can answer (RFC 9457 problem
details as ``application/problem+json``, their codes named), the Bearer scheme, the browser
routes' redirects and pages, and links between operations (a stored connection can be read,
refreshed and deleted). The test suite runs schemathesis against the live service to hold
the document to it. No I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from oauthvault.models import (
    MAX_ACTOR_ID_LENGTH,
    MAX_EXPIRES_IN,
    MAX_PARAMS,
    MAX_PROVIDER_LENGTH,
    MAX_SCOPE_LENGTH,
    MAX_TOKEN_LENGTH,
    MAX_WORKSPACE_ID_LENGTH,
)
from oauthvault.service.problems import MEDIA_TYPE

__all__ = [
    "ERROR_CODES",
    "NO_CONTROL_CHARACTERS",
    "id_rules",
    "install_openapi",
    "param_rules",
    "text_rules",
]

#: What every id, token and scope is checked for (``oauthvault.models``): no C0/C1 control
#: characters and no DEL (written as the characters themselves: ``\\u`` escapes are not
#: read by every tool's regex dialect). Strings are Unicode text: a lone surrogate, which
#: no UTF-8 text can hold, is refused too (``invalid_input``).
NO_CONTROL_CHARACTERS = "^[^\x00-\x1f\x7f-\x9f]*$"


def id_rules(max_length: int) -> dict[str, Any]:
    return {"minLength": 1, "maxLength": max_length, "pattern": NO_CONTROL_CHARACTERS}


def text_rules(max_length: int, *, min_length: int = 0) -> dict[str, Any]:
    return {"minLength": min_length, "maxLength": max_length, "pattern": NO_CONTROL_CHARACTERS}


def param_rules() -> dict[str, Any]:
    """Connection parameters: short names, short printable values (``validate_params``)."""
    return {
        "maxProperties": MAX_PARAMS,
        "propertyNames": {"pattern": "^[A-Za-z][A-Za-z0-9_]{0,49}$"},
        "additionalProperties": {"type": "string", **text_rules(512, min_length=1)},
    }


PROVIDER_RULES = id_rules(MAX_PROVIDER_LENGTH)
WORKSPACE_RULES = id_rules(MAX_WORKSPACE_ID_LENGTH)
ACTOR_RULES = id_rules(MAX_ACTOR_ID_LENGTH)
TOKEN_RULES = text_rules(MAX_TOKEN_LENGTH, min_length=1)
SCOPE_RULES = text_rules(MAX_SCOPE_LENGTH)
EXPIRES_IN_RULES: dict[str, Any] = {"minimum": 0, "maximum": MAX_EXPIRES_IN}

#: Every code an error body can carry, with its HTTP status and meaning (README lists them).
ERROR_CODES: Mapping[str, tuple[int, str]] = {
    "invalid_return_url": (400, "return_url is not in the allow-list"),
    "invalid_client_credentials": (400, "the provider refused the client credentials"),
    "invalid_state": (400, "the OAuth state is unknown, used, expired or from another browser"),
    "invalid_credentials": (400, "the provider refused the credential (nothing stored)"),
    "missing_connection": (400, "a proxied request names no connection (Oauthvault-* headers)"),
    "target_refused": (400, "a proxied path could reach another host or path: nothing sent"),
    "http_error": (400, "another request the HTTP layer refused (the status says which)"),
    "invalid_request": (422, "the request does not parse (JSON, UTF-8, missing field, type)"),
    "invalid_input": (422, "an id, token, scope or parameter breaks a rule (`argument` names it)"),
    "unauthorized": (401, "no API key, or an unknown one"),
    "forbidden": (403, "the API key may not use that workspace"),
    "not_found": (404, "no such connection, or no such path"),
    "unknown_provider": (404, "the provider is not configured in this deployment"),
    "method_not_allowed": (405, "the path does not take that method (`Allow` lists those it does)"),
    "reauthorization_required": (409, "the grant is gone: the user must connect again"),
    "decryption_error": (409, "the stored tokens do not decrypt (status `undecryptable`)"),
    "wrong_credential_kind": (409, "the connection holds another kind of credential"),
    "payload_too_large": (413, "the request body is too large (1 MiB on /v1, 64 KiB on /oauth)"),
    "uri_too_long": (414, "the query string is longer than 16 KiB"),
    "unsupported_media_type": (415, "the callback POST is not a form"),
    "provider_error": (502, "the provider failed (discovery or a connect-time request)"),
    "refresh_failed": (503, "the token expired and the provider failed to renew it"),
    "provider_unavailable": (503, "the provider could not be reached"),
    "redirect_refused": (
        502,
        "the provider redirected a proxied request to a host it does not own",
    ),
    "host_refused": (502, "the provider's API host resolves to a private address: nothing sent"),
    "upstream_unreachable": (502, "a proxied request could not reach the provider"),
    "upstream_timeout": (504, "the provider did not answer a proxied request in time"),
    "verification_failed": (503, "the provider could not say whether the credential works"),
    "storage_unavailable": (503, "the database is unavailable"),
    "config_error": (500, "the service is misconfigured"),
    "client_rejected": (500, "the provider refused this app's client: fix its id or secret"),
    "vault_error": (500, "an unexpected failure"),
}

_AUTH = ("unauthorized",)
_READ = (*_AUTH, "forbidden", "invalid_request", "invalid_input", "storage_unavailable")
_TOKEN = (
    *_READ,
    "not_found",
    "unknown_provider",
    "reauthorization_required",
    "decryption_error",
    "refresh_failed",
    "client_rejected",
    "wrong_credential_kind",
)
#: A JSON body the HTTP layer cannot even parse (an integer of thousands of digits, nesting
#: deeper than the parser's limit) is refused before validation.
_BODY = ("http_error", "payload_too_large")
#: A query string too long for the edge (service/edge.py).
_QUERY = ("uri_too_long",)

#: The codes each operation can answer, besides success.
OPERATION_ERRORS: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("/v1/connect-links", "post"): (
        *_READ,
        *_BODY,
        "invalid_return_url",
        "unknown_provider",
        "provider_error",
    ),
    ("/v1/connections/token", "get"): (*_TOKEN, *_QUERY),
    ("/v1/connections/refresh", "post"): (*_TOKEN, *_BODY),
    ("/v1/connections", "put"): (*_READ, *_BODY, "unknown_provider"),
    ("/v1/connections", "get"): (*_READ, *_QUERY),
    ("/v1/connections", "delete"): (*_READ, *_QUERY, "decryption_error", "unknown_provider"),
    ("/v1/client-credentials", "post"): (
        *_READ,
        *_BODY,
        "unknown_provider",
        "invalid_client_credentials",
        "provider_error",
        "provider_unavailable",
    ),
    ("/v1/credentials", "put"): (
        *_READ,
        *_BODY,
        "unknown_provider",
        "invalid_credentials",
        "verification_failed",
        "client_rejected",
        "config_error",
    ),
    ("/v1/credentials", "get"): (
        *_READ,
        *_QUERY,
        "not_found",
        "wrong_credential_kind",
        "decryption_error",
    ),
    ("/v1/credentials/verify", "post"): (
        *_READ,
        *_BODY,
        "not_found",
        "unknown_provider",
        "wrong_credential_kind",
        "reauthorization_required",
        "refresh_failed",
        "provider_error",
        "decryption_error",
    ),
    ("/v1/providers", "get"): _AUTH,
    ("/v1/audit", "get"): (*_READ, *_QUERY, "not_found"),
}

_PAGE = {"text/html": {"schema": {"type": "string"}}}
_REDIRECT = {"Location": {"schema": {"type": "string", "format": "uri"}}}
_TO_PROVIDER = {
    "description": "to the provider's consent page (sets the browser-binding cookie)",
    "headers": _REDIRECT,
}


def _pages(**descriptions: str) -> dict[str, Any]:
    """Responses that are pages for the end user (``s400="..."`` for status 400)."""
    return {
        name.removeprefix("s"): {"description": f"a page: {text}", "content": _PAGE}
        for name, text in descriptions.items()
    }


_STARTING = _pages(
    s200="asks for a connection parameter nobody gave yet (a form)",
    s400="the request cannot start a flow (an invalid return URL or value)",
    s404="no such provider",
    s502="the provider cannot be reached",
    s503="the vault cannot save the flow right now",
)
_BROWSER_RESPONSES: Mapping[tuple[str, str], dict[str, Any]] = {
    ("/oauth/{provider}/connect", "get"): {"302": _TO_PROVIDER, **_STARTING},
    ("/oauth/{provider}/authorize", "get"): {
        "302": _TO_PROVIDER,
        **_STARTING,
        **_pages(s400="the link has expired or was used"),
    },
    ("/oauth/{provider}/authorize", "post"): {
        "302": _TO_PROVIDER,
        **_STARTING,
        **_pages(
            s400="the link has expired or was used",
            s413="the form is too large",
            s415="not a form",
            s422="a value does not match its rule (the form again, saying which)",
        ),
    },
    ("/oauth/{provider}/callback", "get"): {
        "303": {
            "description": "to the link's return_url with the outcome, or to the result page "
            "(the outcome in a short-lived cookie): no code or state stays in the address bar",
            "headers": _REDIRECT,
        },
        **_pages(s404="no such provider"),
    },
    ("/oauth/{provider}/callback", "post"): {
        "303": {
            "description": "to the GET callback, with a one-time handle",
            "headers": _REDIRECT,
        },
        **_pages(
            s400="the callback has too many or too long fields",
            s404="no such provider",
            s413="the callback is too large",
            s415="not a form post",
            s422="the form could not be read",
            s503="the vault cannot keep the callback right now",
        ),
    },
    ("/oauth/{provider}/result", "get"): _pages(
        s200="connected, or nothing to show",
        s400="why connecting failed, and what to do",
        s404="no such provider",
        s502="the provider failed or could not be reached",
        s503="the provider or the vault is unavailable",
    ),
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `code` is stable (see README's list).",
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "enum": sorted(ERROR_CODES)},
        "detail": {"type": "string"},
        "argument": {"type": "string", "description": "the argument at fault"},
        "error": {"type": ["string", "null"], "description": "the provider's error code"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                },
            },
        },
    },
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

_CONNECTION_LINKS = {
    name: {
        "operationId": operation_id,
        "parameters": {
            field: f"$request.body#/{field}" for field in ("provider", "workspace_id", "actor_id")
        },
    }
    for name, operation_id in (
        ("ReadToken", "get_access_token_v1_connections_token_get"),
        ("DeleteConnection", "delete_connection_v1_connections_delete"),
    )
} | {
    "RefreshConnection": {
        "operationId": "refresh_connection_v1_connections_refresh_post",
        "requestBody": {
            field: f"$request.body#/{field}" for field in ("provider", "workspace_id", "actor_id")
        },
    },
    "ListConnections": {
        "operationId": "list_connections_v1_connections_get",
        "parameters": {
            "workspace_id": "$request.body#/workspace_id",
            "provider": "$request.body#/provider",
        },
    },
}


def install_openapi(app: FastAPI, *, return_url_pattern: str | None) -> None:
    """Make ``app.openapi()`` return the completed document (built once, then kept)."""
    app.openapi = _builder(app, return_url_pattern)  # type: ignore[method-assign]


def _builder(app: FastAPI, return_url_pattern: str | None) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            app.openapi_schema = complete(document, return_url_pattern=return_url_pattern)
        return app.openapi_schema

    return build


def complete(document: dict[str, Any], *, return_url_pattern: str | None) -> dict[str, Any]:
    """``document`` (FastAPI's) with the errors, security, browser answers and links added."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for generated in ("HTTPValidationError", "ValidationError"):
        schemas.pop(generated, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`oauthvault apikey create`).",
        }
    }
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if path.startswith("/v1/"):
                operation["security"] = [{"apiKey": []}]
            _add_errors(responses, OPERATION_ERRORS.get((path, method), ()))
            browser = _BROWSER_RESPONSES.get((path, method))
            if browser is not None:  # pages, after FastAPI's own 200 and 422 are gone
                responses.pop("200", None)
                responses.update(browser)
    paths = document.get("paths", {})
    stored = paths.get("/v1/connections", {}).get("put", {}).get("responses", {}).get("204")
    if stored is not None:
        stored["links"] = _CONNECTION_LINKS
    link_request = schemas.get("ConnectLinkRequest", {}).get("properties", {})
    if "return_url" in link_request:
        link_request["return_url"] = (
            {"type": "null"}
            if return_url_pattern is None
            else {
                "anyOf": [
                    {"type": "string", "maxLength": 2048, "pattern": return_url_pattern},
                    {"type": "null"},
                ]
            }
        ) | {"description": link_request["return_url"].get("description", "")}
    return document


def _add_errors(responses: dict[str, Any], codes: tuple[str, ...]) -> None:
    """One response per status, naming the codes it carries; FastAPI's own 422 (with
    its validation-error schema, and a JSON media type) is replaced."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(ERROR_CODES[code][0], []).append(code)
    if "422" in responses and 422 not in by_status:
        del responses["422"]
    for status, names in sorted(by_status.items()):
        described = "; ".join(f"`{name}`: {ERROR_CODES[name][1]}" for name in names)
        entry = responses.setdefault(str(status), {})
        entry["description"] = (
            f"{entry['description']}; or a problem: {described}"
            if "content" in entry and MEDIA_TYPE not in entry["content"]
            else described
        )
        content = entry.setdefault("content", {})
        content.pop("application/json", None)
        content[MEDIA_TYPE] = {"schema": _PROBLEM_REF}
