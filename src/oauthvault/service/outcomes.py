"""What the end user is told at the end of a connect flow: one entry per way it can end.

Each outcome has a stable code (passed to a return URL as ``oauthvault_error``, and kept in
the short-lived outcome cookie), an HTTP status, a title, one plain sentence of what
happened and one of what to do. ``{provider}`` is the provider's display name and
``{product}`` the product's; nothing a request carries is ever shown. Which outcome a
failure leads to depends on the stage of the flow it stops (:func:`outcome_of_start`,
:func:`outcome_of_callback`, :func:`outcome_of_finish`). No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from oauthvault.failures import Failure, FailureKind

__all__ = [
    "OUTCOMES",
    "Outcome",
    "outcome_for_provider_error",
    "outcome_of_callback",
    "outcome_of_finish",
    "outcome_of_start",
    "outcome_of_store",
]

Tone = Literal["good", "warn", "bad"]

_AGAIN = "Go back to {product} and try again."
_SUPPORT = "Go back to {product}; if it happens again, tell its support team."
_LATER = "Wait a few minutes, then go back to {product} and try again."
_NO_RETRY = "Trying again will not help: tell {product}'s support team."


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    title: str
    message: str
    advice: str | None
    tone: Tone

    def words(self, provider: str, product: str) -> tuple[str, str, str | None]:
        """Title, message and advice with the names filled in."""
        names = {"provider": provider, "product": product}
        advice = self.advice.format(**names) if self.advice else None
        return self.title.format(**names), self.message.format(**names), advice


OUTCOMES: dict[str, Outcome] = {
    "connected": Outcome(200, "Connected", "Your {provider} account is connected.", None, "good"),
    # RFC 6749 §4.1.2.1, and what the callback's checks raise
    "access_denied": Outcome(
        400,
        "Not connected",
        "You chose not to give {product} access to your {provider} account.",
        "If that was a mistake, go back to {product} and connect again.",
        "warn",
    ),
    "invalid_request": Outcome(
        400, "Connection failed", "{provider} could not read the sign-in request.", _SUPPORT, "bad"
    ),
    "unauthorized_client": Outcome(
        400,
        "Connection failed",
        "{provider} does not allow {product} to connect this way.",
        _SUPPORT,
        "bad",
    ),
    "unsupported_response_type": Outcome(
        400,
        "Connection failed",
        "{provider} does not support the sign-in {product} asked for.",
        _SUPPORT,
        "bad",
    ),
    "invalid_scope": Outcome(
        400,
        "Connection failed",
        "{provider} refused the access {product} asked for.",
        _SUPPORT,
        "bad",
    ),
    "server_error": Outcome(
        502,
        "Connection failed",
        "{provider} had a problem while you were signing in.",
        _LATER,
        "bad",
    ),
    "temporarily_unavailable": Outcome(
        503, "Try again later", "{provider} is busy or down for maintenance.", _LATER, "warn"
    ),
    "invalid_grant": Outcome(
        400,
        "Connection failed",
        "{provider} did not accept the sign-in; it may have taken too long.",
        _AGAIN,
        "bad",
    ),
    "invalid_client": Outcome(
        400,
        "Connection failed",
        "{provider} did not accept {product}'s app credentials.",
        _SUPPORT,
        "bad",
    ),
    "invalid_issuer": Outcome(
        400,
        "Connection failed",
        "The answer from {provider} could not be verified.",
        _AGAIN,
        "bad",
    ),
    # A signature or claim that does not verify now will not verify on a retry either.
    "invalid_id_token": Outcome(
        400,
        "Connection failed",
        "The answer from {provider} could not be verified.",
        _NO_RETRY,
        "bad",
    ),
    "interaction_required": Outcome(
        400,
        "Sign-in needed",
        "{provider} needs you to sign in and approve access yourself.",
        _AGAIN,
        "warn",
    ),
    "login_required": Outcome(
        400, "Sign-in needed", "{provider} needs you to sign in first.", _AGAIN, "warn"
    ),
    "consent_required": Outcome(
        400, "Approval needed", "{provider} needs you to approve the access.", _AGAIN, "warn"
    ),
    "provider_error": Outcome(
        400, "Connection failed", "{provider} answered with an error.", _AGAIN, "bad"
    ),
    # ours
    "link_expired": Outcome(
        400,
        "Link expired",
        "This connect link has expired or was already used.",
        "Go back to {product} and start again.",
        "warn",
    ),
    "sign_in_expired": Outcome(
        400,
        "Sign-in expired",
        "This sign-in expired or was already completed.",
        "Go back to {product} and start again.",
        "warn",
    ),
    "other_browser": Outcome(
        400,
        "Open it in the same browser",
        "This sign-in was started in another browser, or this browser's cookies were cleared.",
        "Start again from {product} in the browser you want to use.",
        "warn",
    ),
    "provider_unreachable": Outcome(
        502, "Cannot reach {provider}", "{provider} did not answer in time.", _LATER, "bad"
    ),
    "invalid_credentials": Outcome(
        400,
        "Not connected",
        "{provider} did not accept the credential that was entered, several times.",
        "Check where you copied it from, then go back to {product} and start again.",
        "bad",
    ),
    "unverified_installation": Outcome(
        400,
        "Not connected",
        "{provider} could not confirm that you installed the app on an account you can use.",
        "Go back to {product} and install it again from there, signed in to GitHub as "
        "yourself; if it happens again, tell {product}'s support team.",
        "bad",
    ),
    "unavailable": Outcome(
        503,
        "Try again later",
        "The connection could not be saved right now.",
        _LATER,
        "bad",
    ),
    "unknown_provider": Outcome(
        404,
        "Unknown connection",
        "This address does not lead to any app that can be connected.",
        "Go back to {product} and use its Connect button.",
        "bad",
    ),
    "invalid_return_url": Outcome(
        400,
        "Connection failed",
        "This connect button is not set up correctly.",
        _SUPPORT,
        "bad",
    ),
    "invalid_input": Outcome(
        400,
        "Connection failed",
        "This connect request is not complete or not valid.",
        _SUPPORT,
        "bad",
    ),
    "no_outcome": Outcome(
        200,
        "Nothing to show",
        "This page shows how connecting an account ended, and there is nothing to show.",
        None,
        "warn",
    ),
}

#: Codes a provider may send that are passed on as they are; any other is ``provider_error``.
PROVIDER_CODES = frozenset(
    code
    for code in OUTCOMES
    if code
    not in {
        "connected",
        "provider_error",
        "link_expired",
        "sign_in_expired",
        "invalid_credentials",
        "unverified_installation",
        "other_browser",
        "provider_unreachable",
        "unavailable",
        "unknown_provider",
        "invalid_return_url",
        "invalid_input",
        "no_outcome",
    }
)


def outcome_for_provider_error(error: str) -> str:
    """The outcome code for an OAuth error a provider (or a check of its answer) raised."""
    return error if error in PROVIDER_CODES else "provider_error"


# Each stage of the flow answers the failures it expects; ``None`` is one it does not
# (its caller logs it and answers ``invalid_input``).


def outcome_of_start(failure: Failure) -> str | None:
    """The outcome of a connect flow that could not start (or show its parameter form)."""
    match failure.kind:
        case FailureKind.UNKNOWN_PROVIDER:
            return "unknown_provider"
        case FailureKind.INVALID_INPUT:
            return "invalid_input"
        # Discovery failed: the provider did not answer.
        case (
            FailureKind.PROVIDER_ERROR
            | FailureKind.REAUTHORIZATION_REQUIRED
            | FailureKind.CLIENT_REJECTED
        ):
            return "provider_unreachable"
        case FailureKind.STORAGE_UNAVAILABLE:
            return "unavailable"
        case _:
            return None


def outcome_of_callback(failure: Failure) -> str | None:
    """The outcome of a callback whose state (or held fields) could not be taken."""
    match failure.kind:
        case FailureKind.INVALID_STATE:
            return "other_browser" if failure.other_browser else "sign_in_expired"
        case FailureKind.STORAGE_UNAVAILABLE:
            return "unavailable"
        case _:
            return None


def outcome_of_finish(failure: Failure) -> str | None:
    """The outcome of a callback whose code could not be redeemed and stored."""
    match failure.kind:
        case (
            FailureKind.PROVIDER_ERROR
            | FailureKind.REAUTHORIZATION_REQUIRED
            | FailureKind.CLIENT_REJECTED
        ):
            return outcome_for_provider_error(failure.provider_error or "")
        case FailureKind.STORAGE_UNAVAILABLE:
            return "unavailable"
        case _:
            return None


def outcome_of_store(failure: Failure) -> str | None:
    """The outcome of a credential (typed into a connect link's form) that could not be
    verified and stored; a refused one is answered on the form itself until the link's
    attempts run out."""
    match failure.kind:
        case FailureKind.INVALID_CREDENTIALS:
            return "invalid_credentials"
        case FailureKind.PROVIDER_ERROR | FailureKind.CLIENT_REJECTED:
            return outcome_for_provider_error(failure.provider_error or "")
        case FailureKind.STORAGE_UNAVAILABLE:
            return "unavailable"
        case FailureKind.INVALID_INPUT:
            return "invalid_input"
        case FailureKind.UNKNOWN_PROVIDER:
            return "unknown_provider"
        case _:
            return None
