"""Errors as RFC 9457 problem details (``application/problem+json``) with stable codes.

No response body ever repeats a token, secret, code, verifier or state: messages come from
oauthvault's own errors, which never carry them, and validation errors drop the input.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

from oauthvault.errors import VaultError
from oauthvault.failures import Failure, FailureKind, classify

__all__ = [
    "Problem",
    "for_vault_error",
    "install_problem_handlers",
    "problem_response",
    "provider_answer",
]

logger = logging.getLogger("oauthvault.service")
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """An HTTP error with a stable machine-readable ``code`` (and ``extra`` members of
    the problem body)."""

    def __init__(self, status: int, code: str, detail: str, **extra: str) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra
        super().__init__(detail)


def problem_response(status: int, code: str, detail: str, **extra: object) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def provider_answer(failure: Failure) -> dict[str, str]:
    """A provider's answer for a problem body: its ``error`` code and, when it gave one,
    its ``error_description`` (made fit to show when the answer was read)."""
    if failure.provider_error is None:
        return {}
    answer = {"error": failure.provider_error}
    if failure.description:
        answer["error_description"] = failure.description
    return answer


def for_vault_error(error: VaultError) -> JSONResponse:
    """The problem details answering ``error``, by its :class:`FailureKind`."""
    failure = classify(error)
    answer = provider_answer(failure)
    match failure.kind:
        case FailureKind.INVALID_INPUT:
            return problem_response(422, "invalid_input", str(error), argument=failure.argument)
        case FailureKind.INVALID_STATE:
            return problem_response(400, "invalid_state", str(error))
        case FailureKind.UNKNOWN_PROVIDER:
            return problem_response(404, "unknown_provider", str(error))
        case FailureKind.NOT_FOUND:
            return problem_response(404, "not_found", str(error))
        case FailureKind.REAUTHORIZATION_REQUIRED:
            return problem_response(409, "reauthorization_required", str(error), **answer)
        case FailureKind.CLIENT_REJECTED:
            return problem_response(
                500,
                "client_rejected",
                "the provider refused this app's client (its id, secret or allowed grant "
                "types): the app's configuration is wrong, not the user's connection",
                **answer,
            )
        case FailureKind.INVALID_CREDENTIALS:
            return problem_response(400, "invalid_credentials", str(error), **answer)
        case FailureKind.WRONG_CREDENTIAL_KIND:
            return problem_response(409, "wrong_credential_kind", str(error))
        case FailureKind.PROVIDER_ERROR:
            return problem_response(502, "provider_error", str(error), **answer)
        case FailureKind.STORAGE_UNAVAILABLE:
            logger.error("storage unavailable: %s", error)
            return problem_response(503, "storage_unavailable", "the database is unavailable")
        case FailureKind.DECRYPTION_ERROR:
            logger.error("stored tokens failed to decrypt")
            return problem_response(
                409,
                "decryption_error",
                "the stored tokens do not decrypt with the configured keys (the connection is "
                "marked undecryptable): restore the key to OAUTH_ENCRYPTION_KEY, or connect again",
            )
        case FailureKind.CONFIG_ERROR:
            logger.error("configuration error: %s", error)
            return problem_response(500, "config_error", "the service is misconfigured")
        case FailureKind.OTHER:
            return problem_response(500, "vault_error", "the request failed")


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (Starlette's 405 names only the first
    route that matched the path): each method is tried against the app's routes."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, Problem)  # noqa: S101 - registered for Problem only
        return problem_response(error.status, error.code, error.detail, **error.extra)

    async def on_vault_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, VaultError)  # noqa: S101 - registered for VaultError only
        return for_vault_error(error)

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)  # noqa: S101
        # Drop "input": a malformed body may hold a token.
        errors = [
            {"loc": list(item.get("loc", ())), "msg": item.get("msg", "")}
            for item in error.errors()
        ]
        return problem_response(422, "invalid_request", "the request is malformed", errors=errors)

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)  # noqa: S101
        if error.status_code == 400 and type(error.__cause__).__name__ == "_BodyTooLarge":
            # The edge's limit (service/edge.py), met while FastAPI read the body.
            return problem_response(413, "payload_too_large", "the request body is too large")
        if error.status_code == 400 and isinstance(error.__cause__, UnicodeDecodeError):
            # FastAPI's answer to a body that is not UTF-8: as malformed JSON is answered.
            return problem_response(422, "invalid_request", "the body is not valid UTF-8")
        if error.status_code == 405:
            response = problem_response(405, "method_not_allowed", "method not allowed")
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
            return response
        code = {404: "not_found"}.get(error.status_code, "http_error")
        return problem_response(error.status_code, code, str(error.detail))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(VaultError, on_vault_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
