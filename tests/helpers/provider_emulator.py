"""A loopback OAuth provider emulator: every catalog provider, as its documentation says.

One Starlette app plays all providers at once. How a provider wants to be asked comes
from the catalog entry (:class:`~oauthvault.providers.spec.ProviderSpec`), read at
runtime; how it answers comes from its :class:`~tests.helpers.emulations.Emulation`. Every
request is checked against the catalog; a request that does not have the documented shape
is refused (HTTP 400, or an error page for the authorization request) and the reason is
kept in :attr:`ProviderEmulator.problems`, so a failing test can say what was wrong.

URLs. Endpoint ``<key>`` of provider ``<name>`` is served at
``/<name>[/<value>...]/<role>`` where the values fill the ``{param}`` placeholders of the
catalog URL, in order (``/shopify/acme.myshopify.com/token``,
``/github/<client id>/revoke``; a host a parameter picks per value is that host:
``/amazon/api.amazon.co.uk/token``); :func:`endpoint_overrides` builds the URLs to put in the
service's provider configuration, placeholders kept. Roles: ``authorize``, ``token``,
``refresh``, ``revoke``, ``userinfo``, ``identity``, ``introspect``, and under ``issuer``
the OpenID documents ``discovery`` (``issuer/.well-known/openid-configuration``) and
``jwks`` (``issuer/jwks``).

What is checked, per role:

- ``authorize`` (GET): ``client_id``, the registered ``redirect_uri``,
  ``response_type=code``, a ``state``, the default scopes joined by the entry's
  ``scope_separator`` (no ``scope`` when there are none), every ``extra_authorize_params``
  value, and a S256 ``code_challenge`` exactly when the entry has ``pkce = true``; URL
  values must match their connection parameter's pattern. The answer is a 302 to
  ``redirect_uri?code=…&state=…`` plus the emulation's ``callback_params`` (a code is
  then redeemed only at URLs carrying the emulation's ``redeem_at`` values: the data
  centre the callback named, Zoho's ``accounts-server``; a value the provider sends as an
  https origin is its host in the path), or, for
  ``response_mode=form_post`` (Apple), an HTML page with a form that POSTs them.
- ``token`` (POST): body format (``token_body``), client authentication
  (``token_endpoint_auth_method``: Basic header, or ``client_id``/``client_secret`` in the
  body, Apple's ES256 JWT client secret verified), exactly the documented fields
  (``token_params`` on the code exchange; ``refresh_params``, else ``token_params``, on
  refresh), the code (single use, same redirect_uri, PKCE verifier: its S256 must be the
  authorization request's ``code_challenge``, and the grant keeps both) or the current refresh
  token. Refresh tokens rotate (``refresh_tokens = "rotating"``: the presented one is
  retired, a retired one is a dead grant) or stay (``static``).
- ``revoke``: the request the catalog describes: ``rfc7009`` is a form POST of ``token``
  (``token_type_hint`` optional) with the client authenticated as at the token endpoint;
  ``custom`` follows ``revocation_request`` (method, client auth, bearer, body format,
  token field, which token, headers). Only then is the grant revoked and the emulation's
  ``revocation_answer`` sent.
- ``identity`` / ``userinfo`` (GET): the current access token as bearer.
- ``introspect`` (POST, RFC 7662): client authentication as at the token endpoint;
  answers ``{"active": true, "exp": …}`` for a current access token.

OpenID providers. A provider whose catalog entry has an ``issuer`` is played as that
OpenID provider, with the emulator's loopback issuer URL ``/<name>[/<value>...]/issuer``
(what :func:`endpoint_overrides` configures) in place of the real one: it serves
``<issuer>/.well-known/openid-configuration`` (the endpoints it emulates, and
``jwks_uri``) and ``<issuer>/jwks``, the public half of one RSA key made per emulator run.
When the authorization request asked for ``openid``, the code remembers its ``nonce`` and
the code-exchange answer carries an RS256 ``id_token``: ``iss`` (the loopback issuer), ``sub``
(the emulated account, as ``userinfo`` says it), ``aud`` (the client id), ``iat``, ``exp``,
the ``nonce`` when one was sent, and the claims the provider's documentation adds
(:attr:`~tests.helpers.emulations.Emulation.id_token_claims`).

Control endpoints (for tests): ``POST /_control/<name>/kill`` makes every later refresh of
that provider answer its documented dead-grant shape, ``/garble`` answers an unknown 4xx
body that holds something secret-looking, ``/heal`` undoes both, and
``/variant/<variant>`` picks an emulation variant for the next connect flows
(``/variant/default`` to go back).

The emulator is stricter than real providers in one way: it refuses to revoke a token it
does not know (RFC 7009 would answer 200), so a test learns when the wrong token was sent.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import html
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from oauthvault.providers.apple import APPLE_AUDIENCE
from oauthvault.providers.spec import ProviderSpec, RevocationRequest

from tests.helpers.emulations import Emulation
from tests.helpers.net import free_port
from tests.helpers.service_harness import UvicornThread

__all__ = [
    "ROLES",
    "AppleClient",
    "ClientApp",
    "Grant",
    "ProviderEmulator",
    "Recorded",
    "endpoint_overrides",
    "make_clients",
]

#: Catalog endpoint key -> the last path segment the emulator serves it at.
ROLES: Mapping[str, str] = {
    "authorization_endpoint": "authorize",
    "token_endpoint": "token",
    "refresh_endpoint": "refresh",
    "revocation_endpoint": "revoke",
    "userinfo_endpoint": "userinfo",
    "identity_endpoint": "identity",
    "introspection_endpoint": "introspect",
    "issuer": "issuer",
}
_KEY_OF_ROLE = {role: key for key, role in ROLES.items()}
#: The OpenID provider's documents under its issuer URL: path tail -> role (served for the
#: ``issuer`` endpoint key).
_ISSUER_DOCUMENTS: Mapping[tuple[str, ...], str] = {
    ("issuer", ".well-known", "openid-configuration"): "discovery",
    ("issuer", "jwks"): "jwks",
}
#: The endpoints a discovery document names, when the provider has them.
_DISCOVERED_KEYS = (
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "introspection_endpoint",
)
#: How long an emulated id_token is valid.
_ID_TOKEN_LIFETIME = 3600
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
#: The unknown error body of ``/garble``: no error field, and a secret-looking value.
GARBLED_BODY: Mapping[str, str] = {"weird": "x", "access_token_hint": "SECRET123"}


def endpoint_overrides(spec: ProviderSpec, base_url: str) -> dict[str, str]:
    """The provider-config overrides that send every endpoint of ``spec`` to the emulator
    at ``base_url``, keeping the catalog URL's ``{param}`` placeholders."""
    overrides: dict[str, str] = {}
    for key, role in ROLES.items():
        url = getattr(spec, key)
        if url is None:
            continue
        segments = "".join(f"/{{{name}}}" for name in _PLACEHOLDER.findall(url))
        overrides[key] = f"{base_url}/{spec.name}{segments}/{role}"
    return overrides


@dataclass(frozen=True)
class AppleClient:
    """Sign in with Apple's app credentials: the test keeps the private key, the emulator
    verifies client secrets with the public one."""

    team_id: str
    key_id: str
    private_key_pem: str = field(repr=False)

    @classmethod
    def generate(cls) -> AppleClient:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        return cls(team_id="EMUTEAM001", key_id="EMUKEY0001", private_key_pem=pem)


@dataclass(frozen=True)
class ClientApp:
    """One registered app at one provider (``client_secret`` is ``None`` for Apple)."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    apple: AppleClient | None = None

    def config_table(self) -> dict[str, str]:
        """The credential keys of the app's ``[providers.<name>]`` table."""
        if self.apple is not None:
            return {
                "client_id": self.client_id,
                "team_id": self.apple.team_id,
                "key_id": self.apple.key_id,
                "private_key": self.apple.private_key_pem,
            }
        assert self.client_secret is not None
        return {"client_id": self.client_id, "client_secret": self.client_secret}


def make_clients(catalog: Mapping[str, ProviderSpec]) -> dict[str, ClientApp]:
    """Made-up app credentials for every provider of ``catalog``."""
    clients: dict[str, ClientApp] = {}
    for name, spec in catalog.items():
        if spec.client_secret_kind == "apple_es256_jwt":
            clients[name] = ClientApp(
                "com.example.oauthvault.emulated", apple=AppleClient.generate()
            )
        else:
            clients[name] = ClientApp(f"{name}-client-id", f"{name}-secret-{secrets.token_hex(8)}")
    return clients


@dataclass
class Recorded:
    """One request the emulator received, and whether it was accepted."""

    provider: str
    role: str
    method: str
    path: str
    place: dict[str, str]
    accepted: bool = False
    reason: str | None = None


@dataclass
class Grant:
    """One authorization (a code exchanged), with every token issued under it."""

    provider: str
    place: dict[str, str]
    scope: str | None
    emulation: Emulation
    lifetime: int | None
    access_tokens: list[str] = field(default_factory=list)
    refresh_tokens: list[str] = field(default_factory=list)
    #: The refresh token presented by each successful refresh, in order.
    refreshed_with: list[str] = field(default_factory=list)
    #: The tokens revoked, in order (a revoked grant accepts nothing any more).
    revoked_with: list[str] = field(default_factory=list)
    issued_at: float = field(default_factory=time.time)
    #: The second grant issued with this one (Slack's installing user), if any.
    secondary: Grant | None = None
    #: The id_token of the code-exchange answer (an OpenID provider asked for ``openid``).
    id_token: str | None = None
    #: PKCE (``pkce = true``): the S256 ``code_challenge`` of the authorization request and
    #: the ``code_verifier`` of the code exchange, which was checked against it.
    code_challenge: str | None = None
    code_verifier: str | None = field(default=None, repr=False)

    @property
    def access_token(self) -> str:
        return self.access_tokens[-1]

    @property
    def refresh_token(self) -> str | None:
        return self.refresh_tokens[-1] if self.refresh_tokens else None

    @property
    def revoked(self) -> bool:
        return bool(self.revoked_with)


@dataclass
class _Code:
    provider: str
    place: dict[str, str]
    redirect_uri: str
    challenge: str | None
    scope: str | None
    emulation: Emulation
    #: The authorization request's ``nonce``, for the id_token.
    nonce: str | None = None
    used: bool = False
    #: Placeholder values the code must be redeemed at (the callback's data centre).
    redeem_at: Mapping[str, str] = field(default_factory=dict)


class Rejected(Exception):
    """A request without the documented shape: answered ``status`` with ``body``."""

    def __init__(self, reason: str, status: int = 400, body: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        if body is None:
            body = {"error": "invalid_request", "error_description": reason}
        self.body = dict(body) if isinstance(body, Mapping) else body


@dataclass
class _Incoming:
    method: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def form(self) -> dict[str, str]:
        if self.content_type != "application/x-www-form-urlencoded":
            raise Rejected(f"expected a form body, got {self.content_type or 'no body type'!r}")
        try:
            return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            raise Rejected("the form body cannot be read") from None

    def json(self) -> dict[str, Any]:
        if self.content_type != "application/json":
            raise Rejected(f"expected a JSON body, got {self.content_type or 'no body type'!r}")
        try:
            value = json.loads(self.body)
        except ValueError:
            raise Rejected("the JSON body cannot be read") from None
        if not isinstance(value, dict):
            raise Rejected("the JSON body is not an object")
        return value

    def authorization(self, scheme: str) -> str | None:
        kind, _, value = self.headers.get("authorization", "").partition(" ")
        return value.strip() if kind.lower() == scheme.lower() and value.strip() else None

    def basic(self) -> tuple[str, str] | None:
        value = self.authorization("basic")
        if value is None:
            return None
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Rejected("the Basic credentials cannot be read") from None
        if not sep:
            raise Rejected("the Basic credentials have no ':'")
        return user, password


def _render(template: Any, values: Mapping[str, Any]) -> Any:
    """Fill an answer template (see :mod:`tests.helpers.emulations`)."""
    if isinstance(template, str) and template.startswith("$"):
        return values.get(template[1:])
    if isinstance(template, Mapping):
        rendered = {}
        for key, item in template.items():
            value = _render(item, values)
            if value is None and isinstance(item, str) and item.startswith("$"):
                continue  # a value the emulator does not have this time: the key is absent
            rendered[key] = value
        return rendered
    if isinstance(template, list):
        return [_render(item, values) for item in template]
    return template


def _same_account(owner: Mapping[str, str], place: Mapping[str, str]) -> bool:
    """True when the placeholder values of a request's URL are those of the grant (a URL
    without placeholders belongs to every account)."""
    return all(owner.get(name) == value for name, value in place.items())


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: the left half of the access token's SHA-256, base64url (RS256)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def _answer(status: int, body: Any) -> Response:
    if body is None:
        return Response(status_code=status)
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


class ProviderEmulator:
    """Serves ``catalog``'s providers that have an emulation, for apps ``clients``.

    ``service_url`` is the oauthvault service's public URL: the only redirect URI
    registered for provider ``<name>`` is ``<service_url>/oauth/<name>/callback``.
    """

    def __init__(
        self,
        catalog: Mapping[str, ProviderSpec],
        emulations: Mapping[str, Emulation],
        clients: Mapping[str, ClientApp],
        service_url: str,
    ) -> None:
        self.catalog = {name: spec for name, spec in catalog.items() if name in emulations}
        self.emulations = dict(emulations)
        self.clients = dict(clients)
        self.service_url = service_url.rstrip("/")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log: list[Recorded] = []
        self.problems: list[tuple[str, str]] = []
        self.grants: list[Grant] = []
        self.customer_clients: dict[tuple[str, str], str] = {}
        self.modes: dict[str, str] = {}
        self.variants: dict[str, str] = {}
        self._codes: dict[str, _Code] = {}
        #: Signs the id_tokens of every emulated OpenID provider; ``/jwks`` publishes it.
        self.signing_key = RSAKey.generate_key(
            2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True
        )
        self._lock = threading.Lock()
        self._server: UvicornThread | None = None
        self.app = Starlette(
            routes=[
                Route("/_control/{provider}/{action:path}", self._control, methods=["POST"]),
                Route("/{provider}/{rest:path}", self._dispatch, methods=["GET", "POST", "DELETE"]),
            ]
        )

    # --- lifecycle and test-side helpers ---------------------------------------------------

    def start(self) -> ProviderEmulator:
        self._server = UvicornThread(self.app, self.port)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def overrides(self, name: str) -> dict[str, str]:
        """The endpoint overrides for provider ``name`` (see :func:`endpoint_overrides`)."""
        return endpoint_overrides(self.catalog[name], self.base_url)

    def config_toml(self) -> str:
        """``[providers.<name>]`` tables pointing every emulated provider at the emulator."""
        lines: list[str] = []
        for name in sorted(self.catalog):
            lines.append(f"[providers.{name}]")
            table = {**self.clients[name].config_table(), **self.overrides(name)}
            lines.extend(f"{key} = {json.dumps(value)}" for key, value in table.items())
            lines.append("")
        return "\n".join(lines)

    def control(self, provider: str, action: str) -> None:
        """Call a control endpoint (``kill``, ``garble``, ``heal``, ``variant/<name>``)."""
        with httpx.Client(timeout=5) as client:
            client.post(f"{self.base_url}/_control/{provider}/{action}").raise_for_status()

    def redirect_uri(self, provider: str) -> str:
        return f"{self.service_url}/oauth/{provider}/callback"

    def grant_of(self, access_token: str) -> Grant:
        """The grant that issued ``access_token`` (raises ``LookupError`` if none did)."""
        with self._lock:
            for grant in self.grants:
                if access_token in grant.access_tokens:
                    return grant
        raise LookupError("the emulator never issued that access token")

    def requests(self, provider: str, role: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.log if r.provider == provider and role in (None, r.role)]

    def problems_of(self, provider: str) -> list[str]:
        with self._lock:
            return [reason for name, reason in self.problems if name == provider]

    # --- routing -----------------------------------------------------------------------------

    async def _control(self, request: Request) -> Response:
        provider, action = request.path_params["provider"], request.path_params["action"]
        if provider not in self.catalog:
            return JSONResponse({"error": "unknown provider"}, status_code=404)
        with self._lock:
            if action == "kill":
                self.modes[provider] = "dead"
            elif action == "garble":
                self.modes[provider] = "garbled"
            elif action == "heal":
                self.modes.pop(provider, None)
            elif action.startswith("variant/"):
                variant = action.removeprefix("variant/")
                if variant == "default":
                    self.variants.pop(provider, None)
                elif variant in self.emulations[provider].variants:
                    self.variants[provider] = variant
                else:
                    return JSONResponse({"error": "unknown variant"}, status_code=404)
            else:
                return JSONResponse({"error": "unknown action"}, status_code=404)
            return JSONResponse(
                {"mode": self.modes.get(provider, "normal"), "variant": self.variants.get(provider)}
            )

    async def _dispatch(self, request: Request) -> Response:
        provider = request.path_params["provider"]
        *segments, role = request.path_params["rest"].split("/")
        key = _KEY_OF_ROLE.get(role)
        for tail, document in _ISSUER_DOCUMENTS.items():
            if tuple([*segments, role][-len(tail) :]) == tail:
                segments, role, key = [*segments, role][: -len(tail)], document, "issuer"
                break
        spec = self.catalog.get(provider)
        if spec is None or key is None or getattr(spec, key) is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        incoming = _Incoming(
            request.method,
            dict(request.query_params),
            request.headers,
            await request.body(),
        )
        record = Recorded(provider, role, request.method, request.url.path, {})
        with self._lock:
            self.log.append(record)
            try:
                record.place = self._place(spec, key, segments)
                handler = getattr(self, f"_{role}", None)
                if handler is None:
                    raise Rejected(f"{role} is not emulated", status=404)
                response: Response = handler(spec, record.place, incoming)
            except Rejected as rejected:
                record.reason = rejected.reason
                self.problems.append((provider, f"{role}: {rejected.reason}"))
                if role == "authorize":
                    return HTMLResponse(
                        f"<h1>Error</h1><p>{html.escape(rejected.reason)}</p>", status_code=400
                    )
                return _answer(rejected.status, rejected.body)
            record.accepted = True
            return response

    def _place(self, spec: ProviderSpec, key: str, segments: list[str]) -> dict[str, str]:
        """The placeholder values in the request path, checked."""
        names = _PLACEHOLDER.findall(getattr(spec, key))
        if len(names) != len(segments):
            raise Rejected(f"the path needs {len(names)} placeholder values", status=404)
        place: dict[str, str] = {}
        for name, value in zip(names, segments, strict=True):
            if name == "client_id":
                if value != self.clients[spec.name].client_id:
                    raise Rejected("the client id in the path is not this app's", status=404)
                continue
            base, _, word = name.partition(".")
            param = spec.param(base)
            if word:
                # A host the parameter picks per value (Amazon's region): the account is that
                # value (the region), so its code is redeemed only at the region's hosts.
                hosts = dict(param.hosts).get(word, ()) if param is not None else ()
                picked = [key for key, host in hosts if host == value]
                if not picked or place.get(base, picked[0]) != picked[0]:
                    raise Rejected(f"{name} {value!r} is not valid for this provider", status=404)
                place[base] = picked[0]
                continue
            # A value the provider sends as an https origin fills the URL with its host.
            origin = (
                param is not None and param.source != "link" and param.accepts(f"https://{value}")
            )
            if param is None or not (param.accepts(value) or origin):
                raise Rejected(f"{name} {value!r} is not valid for this provider", status=404)
            place[name] = value
        return place

    def _emulation(self, provider: str) -> Emulation:
        emulation = self.emulations[provider]
        variant = self.variants.get(provider)
        if variant is None:
            return emulation
        return dataclasses.replace(emulation, **emulation.variants[variant])

    # --- client authentication -----------------------------------------------------------

    def _check_secret(self, spec: ProviderSpec, secret: str | None) -> None:
        app = self.clients[spec.name]
        if app.apple is not None:
            self._check_apple_secret(app, secret)
        elif secret != app.client_secret:
            raise Rejected("wrong client secret", status=401, body={"error": "invalid_client"})

    @staticmethod
    def _check_apple_secret(app: ClientApp, secret: str | None) -> None:
        """Apple's client secret: an ES256 JWT by the team's key, for this services id."""
        assert app.apple is not None
        if not secret:
            raise Rejected("no client secret", status=401, body={"error": "invalid_client"})
        public = serialization.load_pem_private_key(
            app.apple.private_key_pem.encode(), password=None
        ).public_key()
        key = ECKey.import_key(
            public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        try:
            token = jwt.decode(secret, key, algorithms=["ES256"])
        except (JoseError, ValueError) as error:
            raise Rejected(
                f"client secret JWT: {type(error).__name__}", 401, {"error": "invalid_client"}
            ) from None
        claims, now = token.claims, time.time()
        wanted = {"iss": app.apple.team_id, "sub": app.client_id, "aud": APPLE_AUDIENCE}
        wrong = sorted(name for name, value in wanted.items() if claims.get(name) != value)
        if token.header.get("kid") != app.apple.key_id:
            wrong.append("kid")
        if not (claims.get("iat", now + 1) <= now + 60 < claims.get("exp", 0) + 60):
            wrong.append("iat/exp")
        if wrong:
            raise Rejected(
                f"client secret JWT: wrong {', '.join(wrong)}", 401, {"error": "invalid_client"}
            )

    def _client_auth(
        self, spec: ProviderSpec, incoming: _Incoming, fields: dict[str, Any], method: str
    ) -> None:
        """Check and remove the client credentials: ``basic``, ``post``, ``client_id``
        (the id only, in the body) or ``none``."""
        app = self.clients[spec.name]
        basic = incoming.basic()
        if method == "basic":
            if basic is None:
                raise Rejected("the client must authenticate with HTTP Basic", 401)
            if "client_secret" in fields:
                raise Rejected("client_secret must not be in the body with Basic auth")
            if basic[0] != app.client_id:
                raise Rejected("wrong client id in the Basic header", 401)
            self._check_secret(spec, basic[1])
            fields.pop("client_id", None)  # RFC 6749 allows it; it must then match
            return
        if basic is not None:
            raise Rejected("HTTP Basic client authentication is not what this provider takes")
        if method == "none":
            if "client_id" in fields or "client_secret" in fields:
                raise Rejected("no client credentials are expected here")
            return
        if fields.pop("client_id", None) != app.client_id:
            raise Rejected("client_id missing or wrong in the body", 401)
        if method == "client_id":
            if "client_secret" in fields:
                raise Rejected("only the client id is expected, not the secret")
            return
        self._check_secret(spec, fields.pop("client_secret", None))

    @staticmethod
    def _token_auth_method(spec: ProviderSpec) -> str:
        return "basic" if spec.token_endpoint_auth_method == "client_secret_basic" else "post"

    # --- authorization request ---------------------------------------------------------------

    def _authorize(
        self, spec: ProviderSpec, place: dict[str, str], incoming: _Incoming
    ) -> Response:
        query, app = incoming.query, self.clients[spec.name]
        if incoming.method != "GET":
            raise Rejected("the authorization request is a GET")
        redirect_uri = self.redirect_uri(spec.name)
        expected = {
            "client_id": app.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            **spec.extra_authorize_params,
        }
        for name, value in expected.items():
            if query.get(name) != value:
                raise Rejected(f"{name} must be {value!r}, got {query.get(name)!r}")
        if not query.get("state"):
            raise Rejected("no state")
        scope = spec.scope_separator.join(spec.default_scopes) or None
        if query.get("scope") != scope:
            raise Rejected(f"scope must be {scope!r}, got {query.get('scope')!r}")
        challenge = query.get("code_challenge")
        if spec.pkce:
            if query.get("code_challenge_method") != "S256" or not _CHALLENGE.match(
                challenge or ""
            ):
                raise Rejected("PKCE (S256 code_challenge) is required")
        elif challenge is not None or "code_challenge_method" in query:
            raise Rejected("PKCE is not used with this provider")
        emulation = self._emulation(spec.name)
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(
            spec.name,
            {**place, **emulation.redeem_at},  # the account: where it was asked, and its DC
            redirect_uri,
            challenge,
            scope,
            emulation,
            query.get("nonce"),
            redeem_at=dict(emulation.redeem_at),
        )
        fields = {"code": code, "state": query["state"], **emulation.callback_params}
        if query.get("response_mode") == "form_post":
            fields["user"] = json.dumps(
                {"name": {"firstName": "Ada", "lastName": "Lovelace"}, "email": "ada@example.com"}
            )
            inputs = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                for k, v in fields.items()
            )
            return HTMLResponse(
                "<!doctype html><html><body onload='document.forms[0].submit()'>"
                f'<form method="post" action="{html.escape(redirect_uri)}">{inputs}</form>'
                "</body></html>"
            )
        return RedirectResponse(f"{redirect_uri}?{urlencode(fields)}", status_code=302)

    # --- token endpoint ----------------------------------------------------------------------

    def _token(self, spec: ProviderSpec, place: dict[str, str], incoming: _Incoming) -> Response:
        if incoming.method != "POST":
            raise Rejected("the token request is a POST")
        fields: dict[str, Any] = incoming.json() if spec.token_body == "json" else incoming.form()
        if fields.get("grant_type") == "client_credentials":
            self._customer_or_app_auth(spec, incoming, fields)
        else:
            self._client_auth(spec, incoming, fields, self._token_auth_method(spec))
        grant_type = fields.get("grant_type")
        if grant_type == "authorization_code":
            grant, values = self._redeem(spec, place, fields)
            template = grant.emulation.code_answer
        elif grant_type == "client_credentials":
            return self._client_credentials(spec, place, fields)
        elif grant_type == "refresh_token":
            dead = self._dead_answer(spec)
            if dead is not None:
                return dead
            grant, values = self._refresh(spec, place, fields)
            template = grant.emulation.refresh_answer or grant.emulation.code_answer
        else:
            raise Rejected(f"unsupported grant_type {grant_type!r}")
        body = _render(template, values)
        if "id_token" in values:
            body["id_token"] = values["id_token"]
        emulation = self.emulations[spec.name]
        accept = incoming.headers.get("accept", "")
        if emulation.form_answer_without_accept_json and "application/json" not in accept:
            flat = {k: str(v) for k, v in body.items() if isinstance(v, (str, int))}
            return Response(urlencode(flat), media_type="application/x-www-form-urlencoded")
        return _answer(200, body)

    @staticmethod
    def _check_fields(
        fields: Mapping[str, Any], required: set[str], extra: Mapping[str, str]
    ) -> None:
        for name, value in extra.items():
            if fields.get(name) != value:
                raise Rejected(f"{name} must be {value!r}, got {fields.get(name)!r}")
        unexpected = sorted(set(fields) - required - set(extra) - {"code_verifier"})
        if unexpected:
            raise Rejected(f"unexpected fields {unexpected}")
        missing = sorted(name for name in required if not fields.get(name))
        if missing:
            raise Rejected(f"missing fields {missing}")

    def _lifetime(self, emulation: Emulation, fields: Mapping[str, Any]) -> int | None:
        if emulation.lifetime_param is not None and emulation.lifetime_param in fields:
            return int(fields[emulation.lifetime_param])
        return emulation.expires_in

    def _values(
        self, spec: ProviderSpec, grant: Grant, refresh_token: str | None
    ) -> dict[str, Any]:
        scopes = grant.scope.split(spec.scope_separator) if grant.scope else []
        other = grant.secondary
        return {
            "secondary_access_token": other.access_token if other else None,
            "secondary_refresh_token": other.refresh_token if other else None,
            "secondary_expires_in": other.lifetime if other else None,
            "access_token": grant.access_token,
            "refresh_token": refresh_token,
            "expires_in": grant.lifetime,
            "scope": grant.scope,
            "scope_list": scopes,
            "issued_at": str(int(grant.issued_at * 1000)),
        }

    def _new_access_token(self, grant: Grant) -> None:
        grant.access_tokens.append(grant.emulation.token_prefix + secrets.token_urlsafe(24))
        grant.issued_at = time.time()

    def _redeem(
        self, spec: ProviderSpec, place: dict[str, str], fields: dict[str, Any]
    ) -> tuple[Grant, dict[str, Any]]:
        self._check_fields(fields, {"grant_type", "code", "redirect_uri"}, spec.token_params)
        pending = self._codes.get(str(fields["code"]))
        if pending is None or pending.used or pending.provider != spec.name:
            raise Rejected("unknown or used code", body={"error": "invalid_grant"})
        pending.used = True
        if not _same_account(pending.place, place):
            raise Rejected(f"the code was issued for {pending.place}, redeemed at {place}")
        if any(place.get(name) != value for name, value in pending.redeem_at.items()):
            raise Rejected(f"the code is redeemed at {pending.redeem_at}, not at {place}")
        if fields["redirect_uri"] != pending.redirect_uri:
            raise Rejected("redirect_uri differs from the authorization request's")
        verifier = fields.get("code_verifier")
        if pending.challenge is None and verifier is not None:
            raise Rejected("code_verifier sent without PKCE")
        if pending.challenge is not None and (
            not isinstance(verifier, str) or _s256(verifier) != pending.challenge
        ):
            raise Rejected(
                "code_verifier does not match the code_challenge", body={"error": "invalid_grant"}
            )
        emulation = pending.emulation
        grant = Grant(spec.name, place, pending.scope, emulation, self._lifetime(emulation, fields))
        if pending.challenge is not None:  # verified above
            grant.code_challenge, grant.code_verifier = pending.challenge, verifier
        self._new_access_token(grant)
        if spec.refresh_tokens != "none":
            grant.refresh_tokens.append("rt-" + secrets.token_urlsafe(24))
        self.grants.append(grant)
        if emulation.secondary_grant is not None:
            base = self.emulations[spec.name]
            behaviour = dataclasses.replace(base, **base.variants[emulation.secondary_grant])
            other = Grant(spec.name, place, None, behaviour, grant.lifetime)
            self._new_access_token(other)
            other.refresh_tokens.append("rt-" + secrets.token_urlsafe(24))
            self.grants.append(other)
            grant.secondary = other
        values = self._values(spec, grant, grant.refresh_token)
        if spec.issuer is not None and "openid" in values["scope_list"]:
            values["id_token"] = grant.id_token = self._id_token(spec, place, grant, pending.nonce)
        return grant, values

    def register_customer_client(self, provider: str, client_id: str, secret: str) -> None:
        """A customer's own client at ``provider``, for client-credentials connections."""
        with self._lock:
            self.customer_clients[(provider, client_id)] = secret

    def _customer_or_app_auth(
        self, spec: ProviderSpec, incoming: _Incoming, fields: dict[str, Any]
    ) -> None:
        """Client authentication of a client_credentials request, as the catalog says
        (Basic or body), by the app's client or a registered customer client."""
        basic = incoming.basic()
        if self._token_auth_method(spec) == "basic":
            if basic is None or "client_secret" in fields:
                raise Rejected("the client must authenticate with HTTP Basic", 401)
            client_id, secret = basic
            fields.pop("client_id", None)
        else:
            if basic is not None:
                raise Rejected("HTTP Basic client authentication is not what this provider takes")
            client_id, secret = fields.pop("client_id", None), fields.pop("client_secret", None)
        if client_id == self.clients[spec.name].client_id:
            self._check_secret(spec, secret)
            return
        if self.customer_clients.get((spec.name, str(client_id))) != secret:
            raise Rejected("unknown client or wrong secret", 401, {"error": "invalid_client"})
        fields["_client_id"] = client_id

    def _client_credentials(
        self, spec: ProviderSpec, place: dict[str, str], fields: dict[str, Any]
    ) -> Response:
        """RFC 6749 §4.4: a token for the client itself, never with a refresh token. A
        killed provider answers ``invalid_client`` (the client was disabled)."""
        if not spec.client_credentials:
            raise Rejected("this provider does not document the client_credentials grant")
        if self.modes.get(spec.name) == "dead":
            return _answer(401, {"error": "invalid_client"})
        client_id = fields.pop("_client_id", self.clients[spec.name].client_id)
        scope = fields.pop("scope", None)
        fields.pop("grant_type", None)
        self._check_fields(fields, set(), spec.token_params)
        emulation = self._emulation(spec.name)
        grant = Grant(spec.name, {**place, "client_id": client_id}, scope, emulation, 1800)
        grant.access_tokens.append(f"cc-{spec.name}-{secrets.token_urlsafe(16)}")
        self.grants.append(grant)
        # The provider's usual answer shape (Salesforce's instance_url, ...), never with a
        # refresh token.
        body = _render(emulation.code_answer, self._values(spec, grant, None))
        body.pop("refresh_token", None)
        return _answer(200, body)

    def _dead_answer(self, spec: ProviderSpec) -> Response | None:
        mode = self.modes.get(spec.name)
        if mode == "dead":
            status, body = self.emulations[spec.name].dead_grant
            return _answer(status, dict(body))
        if mode == "garbled":
            return _answer(400, dict(GARBLED_BODY))
        return None

    def _refresh(
        self, spec: ProviderSpec, place: dict[str, str], fields: dict[str, Any]
    ) -> tuple[Grant, dict[str, Any]]:
        extra = spec.refresh_params if spec.refresh_params is not None else spec.token_params
        self._check_fields(fields, {"grant_type", "refresh_token"}, extra)
        if "code_verifier" in fields:
            raise Rejected("unexpected fields ['code_verifier']")
        presented = fields["refresh_token"]
        grant = next((g for g in self.grants if presented in g.refresh_tokens), None)
        if grant is None or grant.provider != spec.name:
            raise Rejected("unknown refresh token", *self.emulations[spec.name].dead_grant)
        if grant.revoked or presented != grant.refresh_token:
            raise Rejected("a retired or revoked refresh token", *grant.emulation.dead_grant)
        if not _same_account(grant.place, place):
            raise Rejected(f"the grant belongs to {grant.place}, refreshed at {place}")
        grant.refreshed_with.append(presented)
        grant.lifetime = self._lifetime(grant.emulation, fields)
        self._new_access_token(grant)
        answer_refresh: str | None = None
        if spec.refresh_tokens == "rotating":
            grant.refresh_tokens.append("rt-" + secrets.token_urlsafe(24))
            answer_refresh = grant.refresh_token
        elif grant.emulation.echoes_static_refresh_token:
            answer_refresh = grant.refresh_token
        return grant, self._values(spec, grant, answer_refresh)

    # --- bearer endpoints ------------------------------------------------------------------

    def _bearer_grant(self, spec: ProviderSpec, place: dict[str, str], token: str | None) -> Grant:
        for grant in self.grants:
            if grant.provider == spec.name and grant.access_tokens and token == grant.access_token:
                if grant.revoked:
                    break
                if not _same_account(grant.place, place):
                    raise Rejected("the token belongs to another account", status=401)
                return grant
        raise Rejected(
            "a current access token is required as bearer", 401, {"error": "invalid_token"}
        )

    def _identity(self, spec: ProviderSpec, place: dict[str, str], incoming: _Incoming) -> Response:
        if incoming.method != "GET":
            raise Rejected("the identity endpoint is a GET")
        grant = self._bearer_grant(spec, place, incoming.authorization("bearer"))
        return _answer(200, grant.emulation.identity)

    def _userinfo(self, spec: ProviderSpec, place: dict[str, str], incoming: _Incoming) -> Response:
        grant = self._bearer_grant(spec, place, incoming.authorization("bearer"))
        return _answer(200, {"sub": self._subject(grant)})

    def _subject(self, grant: Grant) -> str:
        """The emulated account a grant belongs to (``sub`` of userinfo and id_token)."""
        return f"{grant.provider}-user-{self.grants.index(grant)}"

    # --- OpenID provider ---------------------------------------------------------------------

    def _url(self, spec: ProviderSpec, key: str, place: Mapping[str, str]) -> str | None:
        """Where the emulator serves endpoint ``key`` for the account at ``place`` (``None``
        when the provider has no such endpoint or its URL needs values ``place`` lacks)."""
        template = self.overrides(spec.name).get(key)
        if template is None:
            return None
        values = {**place, "client_id": self.clients[spec.name].client_id}

        def value_of(match: re.Match[str]) -> str:
            base, _, word = match[1].partition(".")
            param = spec.param(base) if word else None
            host = param.host(word, values[base]) if param and base in values else None
            return host or values.get(match[1], match[0])

        url = _PLACEHOLDER.sub(value_of, template)
        return None if _PLACEHOLDER.search(url) else url

    def _issuer_url(self, spec: ProviderSpec, place: Mapping[str, str]) -> str:
        url = self._url(spec, "issuer", place)
        assert url is not None  # the issuer's own placeholders are those of its path
        return url

    def _discovery(
        self, spec: ProviderSpec, place: dict[str, str], incoming: _Incoming
    ) -> Response:
        """OpenID Connect Discovery 1.0 §3: the emulated issuer's metadata."""
        if incoming.method != "GET":
            raise Rejected("the discovery document is a GET")
        issuer = self._issuer_url(spec, place)
        document: dict[str, Any] = {"issuer": issuer}
        for key in _DISCOVERED_KEYS:
            url = self._url(spec, key, place)
            if url is not None:
                document[key] = url
        if spec.revocation_method in (None, "rfc7009"):
            url = self._url(spec, "revocation_endpoint", place)
            if url is not None:
                document["revocation_endpoint"] = url
        document |= {
            "jwks_uri": f"{issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": [spec.token_endpoint_auth_method],
            "scopes_supported": list(spec.default_scopes),
        }
        if spec.pkce:
            document["code_challenge_methods_supported"] = ["S256"]
        return JSONResponse(document)

    def _jwks(self, spec: ProviderSpec, place: dict[str, str], incoming: _Incoming) -> Response:
        """The emulated issuer's signing keys (RFC 7517 §5)."""
        if incoming.method != "GET":
            raise Rejected("the JWKS is a GET")
        return JSONResponse({"keys": [self.signing_key.as_dict(private=False)]})

    def _id_token(
        self, spec: ProviderSpec, place: dict[str, str], grant: Grant, nonce: str | None
    ) -> str:
        """OIDC Core §2: the id_token of a code exchange that asked for ``openid``, RS256."""
        scopes = grant.scope.split(spec.scope_separator) if grant.scope else []
        now = int(time.time())
        client_id = self.clients[spec.name].client_id
        values = {
            "subject": self._subject(grant),
            "client_id": client_id,
            "auth_time": now,
            "at_hash": _at_hash(grant.access_token),
            "email": "ada@example.com" if "email" in scopes else None,
            "email_verified": True if "email" in scopes else None,
            "name": "Ada Lovelace" if "profile" in scopes else None,
        }
        claims: dict[str, Any] = {
            "iss": self._issuer_url(spec, place),
            "sub": values["subject"],
            "aud": client_id,
            "iat": now,
            "exp": now + _ID_TOKEN_LIFETIME,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        claims |= _render(grant.emulation.id_token_claims, values)
        header = {"alg": "RS256", "typ": "JWT", "kid": self.signing_key.kid}
        return jwt.encode(header, claims, self.signing_key)

    def _introspect(
        self, spec: ProviderSpec, place: dict[str, str], incoming: _Incoming
    ) -> Response:
        if incoming.method != "POST":
            raise Rejected("introspection is a POST")
        fields: dict[str, Any] = incoming.form()
        self._client_auth(spec, incoming, fields, self._token_auth_method(spec))
        if fields.pop("token_type_hint", None) not in (None, "access_token", "refresh_token"):
            raise Rejected("unknown token_type_hint")
        self._check_fields(fields, {"token"}, {})
        try:
            grant = self._bearer_grant(spec, place, fields["token"])
        except Rejected:
            return _answer(200, {"active": False})
        exp = None if grant.lifetime is None else int(grant.issued_at) + grant.lifetime
        return _answer(
            200,
            {
                "active": True,
                "scope": grant.scope,
                "client_id": self.clients[spec.name].client_id,
                "token_type": "access_token",
                "iat": int(grant.issued_at),
                "exp": exp,
            },
        )

    # --- revocation --------------------------------------------------------------------------

    def revocation_shape(self, spec: ProviderSpec) -> RevocationRequest:
        """The request the catalog documents; RFC 7009 spelled as a custom request."""
        if spec.revocation_method == "custom":
            assert spec.revocation_request is not None
            return spec.revocation_request
        return RevocationRequest(client_auth=self._token_auth_method(spec))

    def _revoke(self, spec: ProviderSpec, place: dict[str, str], incoming: _Incoming) -> Response:
        shape = self.revocation_shape(spec)
        if incoming.method != shape.http_method:
            raise Rejected(f"revocation is {shape.http_method}, got {incoming.method}")
        for name, value in shape.headers.items():
            if incoming.headers.get(name) != value:
                raise Rejected(f"header {name} must be {value!r}")
        fields: dict[str, Any]
        if shape.body == "form":
            fields = incoming.form()
        elif shape.body == "json":
            fields = incoming.json()
        elif shape.body == "query":
            fields = dict(incoming.query)
        else:
            if incoming.body.strip() not in (b"", b"null"):
                raise Rejected("revocation takes no body")
            fields = {}
        if shape.body != "query" and incoming.query:
            raise Rejected(f"unexpected query parameters {sorted(incoming.query)}")
        if shape.bearer:
            if incoming.basic() is not None:
                raise Rejected("the token goes as bearer, no client credentials")
            token = incoming.authorization("bearer")
            if token is None:
                raise Rejected("the token to revoke must be the bearer token")
            self._client_auth(spec, _Incoming("", {}, {}, b""), fields, shape.client_auth)
        else:
            self._client_auth(spec, incoming, fields, shape.client_auth)
            token = fields.pop(shape.token_param, None)
            if not isinstance(token, str) or not token:
                raise Rejected(f"the token must be sent as {shape.token_param!r}")
        hint = fields.pop("token_type_hint", None)
        if spec.revocation_method != "rfc7009" and hint is not None:
            raise Rejected("token_type_hint is not part of this provider's request")
        if fields:
            raise Rejected(f"unexpected fields {sorted(fields)}")
        grant = next(
            (
                g
                for g in self.grants
                if g.provider == spec.name and token in g.access_tokens + g.refresh_tokens
            ),
            None,
        )
        if grant is None or grant.revoked or not _same_account(grant.place, place):
            raise Rejected("unknown or already revoked token")
        wanted = grant.access_token
        if shape.token == "refresh_or_access" and grant.refresh_token is not None:
            wanted = grant.refresh_token
        if token != wanted:
            raise Rejected("not the token the documentation says to revoke")
        if hint is not None and hint != (
            "refresh_token" if token == grant.refresh_token else "access_token"
        ):
            raise Rejected(f"token_type_hint {hint!r} does not match the token")
        grant.revoked_with.append(token)
        status, body = self.emulations[spec.name].revocation_answer
        return _answer(status, body)
