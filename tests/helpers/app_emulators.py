"""Loopback emulators of the services minted tokens come from, as their documentation says.

Each is a Starlette app served by uvicorn on 127.0.0.1 in a thread (``start()`` /
``stop()``, or ``with``), that checks what it is sent as strictly as the real service
documents it and counts what it mints, so a test can tell exactly how many tokens were
minted and that each one works.

- :class:`GitHubEmulator`: ``POST /app/installations/{id}/access_tokens`` verifies the
  app's RS256 JWT with the registered public key of the app its ``iss`` names (``iat`` at
  most 60 s ahead, ``exp`` at most 600 s after ``iat`` and not passed) and answers 201 with
  a fresh ``token`` and ``expires_at`` an hour ahead; ``GET /installation/repositories``
  and ``DELETE /installation/token`` take a current installation token as bearer, and
  ``GET /user/installations`` a user access token (``users``).
  GitHub's pages: generating-a-json-web-token-jwt-for-a-github-app and
  generating-an-installation-access-token-for-a-github-app (docs.github.com).
- :class:`GoogleTokenEmulator`: Google's token endpoint for the JWT bearer grant
  (developers.google.com/identity/protocols/oauth2/service-account): the assertion's
  signature is checked with the key its ``kid`` names for the account its ``iss`` names;
  ``aud`` must be the emulator's token URL, ``scope`` non-empty, ``exp - iat`` at most an
  hour.
- :class:`TwoStepEmulator`: Tableau's personal access token sign-in
  (``/tableau/<server>/api/<version>/auth/signin``, JSON only when asked for with
  ``Accept: application/json``; a new sign-in with a PAT ends that PAT's earlier session,
  as Tableau documents) and Looker's API login (``/looker/<host>/api/4.0/login``, a form of
  ``client_id`` and ``client_secret``); :meth:`TwoStepEmulator.loopback` turns a catalog
  URL (``https://{server}/...``) into the emulator's.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode

from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.helpers.net import bound_socket
from tests.helpers.service_harness import UvicornThread

__all__ = [
    "GitHubEmulator",
    "GoogleTokenEmulator",
    "Installation",
    "TwoStepEmulator",
]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME = 3600


def _public(key: rsa.RSAPublicKey | rsa.RSAPrivateKey | RSAKey) -> RSAKey:
    if isinstance(key, RSAKey):
        return key
    if isinstance(key, rsa.RSAPrivateKey):
        key = key.public_key()
    return RSAKey.import_key(key)


def _segment(token: str, index: int) -> dict[str, Any] | None:
    """A JWT's header (0) or claims (1), unverified; ``None`` when malformed."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[index] + "=" * (-len(parts[index]) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _bearer(request: Request, scheme: str = "Bearer") -> str | None:
    value = request.headers.get("authorization", "")
    prefix = f"{scheme} "
    return value[len(prefix) :] if value.startswith(prefix) else None


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Served:
    """Serving an emulator's Starlette ``app`` on a free loopback port."""

    app: Starlette

    def __init__(self, clock: Callable[[], float]) -> None:
        self._socket = bound_socket()
        self.port = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.clock = clock
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._server: UvicornThread | None = None

    def start(self) -> Self:
        self._server = UvicornThread(self.app, self._socket)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _refuse(self, status: int, body: Mapping[str, Any], problem: str) -> JSONResponse:
        with self._lock:
            self.problems.append(problem)
        return JSONResponse(dict(body), status_code=status)


# --- GitHub --------------------------------------------------------------------------------


@dataclass
class Installation:
    app_id: str
    suspended: bool = False
    repositories: list[str] = field(default_factory=lambda: ["octo-repo"])


@dataclass
class _IssuedToken:
    installation_id: str
    expires_at: float


class GitHubEmulator(_Served):
    """GitHub's installation-token API for registered apps (see the module docstring).

    ``apps``: app id (numeric or client id, as the JWT ``iss``) -> public key;
    ``installations``: installation id -> :class:`Installation`; ``mints``: tokens minted
    per installation id; ``headers``: the headers of the last mint request.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.apps: dict[str, RSAKey] = {}
        self.installations: dict[str, Installation] = {}
        self.mints: Counter[str] = Counter()
        self.headers: dict[str, str] = {}
        self.tokens: dict[str, _IssuedToken] = {}
        #: user access token -> the installation ids that user can reach
        self.users: dict[str, set[str]] = {}
        #: the app's OAuth client (id -> secret), codes handed out (code -> user token),
        #: app slugs (slug -> app id), where an installation sends the browser, and who
        #: the next installation is made by (installation id, user token)
        self.clients: dict[str, str] = {}
        self.codes: dict[str, str] = {}
        self.slugs: dict[str, str] = {}
        self.callback_url: str | None = None
        self.next_install: tuple[str, str] | None = None
        self.send_code = True
        self.app = Starlette(
            routes=[
                Route("/apps/{slug}/installations/new", self._install_page, methods=["GET"]),
                Route("/login/oauth/access_token", self._user_token, methods=["POST"]),
                Route(
                    "/app/installations/{installation_id}/access_tokens",
                    self._mint,
                    methods=["POST"],
                ),
                Route("/installation/repositories", self._repositories, methods=["GET"]),
                Route("/installation/token", self._revoke, methods=["DELETE"]),
                Route("/user/installations", self._user_installations, methods=["GET"]),
            ]
        )

    def register_app(self, app_id: str, key: rsa.RSAPublicKey | rsa.RSAPrivateKey) -> None:
        self.apps[app_id] = _public(key)

    def install(self, installation_id: str, app_id: str, *, suspended: bool = False) -> None:
        self.installations[installation_id] = Installation(app_id, suspended)

    def uninstall(self, installation_id: str) -> None:
        with self._lock:
            self.installations.pop(installation_id, None)
            for token, issued in list(self.tokens.items()):
                if issued.installation_id == installation_id:
                    del self.tokens[token]

    def _current(self, token: str | None) -> _IssuedToken | None:
        issued = self.tokens.get(token or "")
        if issued is None or issued.expires_at <= self.clock():
            return None
        return issued

    def _verified_app(self, assertion: str | None) -> str | None:
        """The app id whose key signed ``assertion`` with GitHub's claims, else ``None``."""
        claims = _segment(assertion or "", 1) or {}
        app_id = str(claims.get("iss", ""))
        key = self.apps.get(app_id)
        if assertion is None or key is None:
            return None
        try:
            token = jwt.decode(assertion, key, algorithms=["RS256"])
        except (JoseError, ValueError):
            return None
        iat, exp = token.claims.get("iat"), token.claims.get("exp")
        now = self.clock()
        if not isinstance(iat, int) or not isinstance(exp, int):
            return None
        if iat > now + 60 or exp - iat > 600 or exp <= now:
            return None
        return app_id

    async def _mint(self, request: Request) -> Response:
        installation_id = request.path_params["installation_id"]
        self.headers = dict(request.headers)
        app_id = self._verified_app(_bearer(request))
        if app_id is None:
            body = {"message": "A JSON web token could not be decoded"}
            return self._refuse(401, body, "the app JWT was refused")
        with self._lock:
            installation = self.installations.get(installation_id)
            if installation is None or installation.app_id != app_id:
                return JSONResponse({"message": "Not Found"}, status_code=404)
            if installation.suspended:
                body = {"message": "This installation has been suspended"}
                return JSONResponse(body, status_code=403)
            token = "ghs_" + secrets.token_urlsafe(27)
            expires_at = self.clock() + TOKEN_LIFETIME
            self.tokens[token] = _IssuedToken(installation_id, expires_at)
            self.mints[installation_id] += 1
        answer = {
            "token": token,
            "expires_at": _iso(expires_at),
            "permissions": {"contents": "read", "metadata": "read"},
            "repository_selection": "all",
        }
        return JSONResponse(answer, status_code=201)

    async def _install_page(self, request: Request) -> Response:
        """The user installs the app (``next_install``) and is sent to the app's user
        authorization callback with the installation id, a code (unless ``send_code`` is
        off: the app does not ask for user authorization) and the state it was given."""
        app_id = self.slugs.get(request.path_params["slug"])
        if app_id is None or self.callback_url is None or self.next_install is None:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        installation_id, user_token = self.next_install
        self.install(installation_id, app_id)
        self.users.setdefault(user_token, set()).add(installation_id)
        query = {"installation_id": installation_id, "setup_action": "install"}
        if self.send_code:
            code = secrets.token_hex(10)
            self.codes[code] = user_token
            query["code"] = code
        if "state" in request.query_params:
            query["state"] = request.query_params["state"]
        return RedirectResponse(f"{self.callback_url}?{urlencode(query)}", status_code=302)

    async def _user_token(self, request: Request) -> Response:
        """``POST /login/oauth/access_token``: the app's client and a code -> a user token."""
        form = dict(parse_qsl((await request.body()).decode()))
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id or self.clients.get(client_id) != secret:
            return JSONResponse({"error": "incorrect_client_credentials"})
        user_token = self.codes.pop(form.get("code", ""), None)
        if user_token is None:
            return JSONResponse({"error": "bad_verification_code"})
        return JSONResponse({"access_token": user_token, "token_type": "bearer"})

    async def _repositories(self, request: Request) -> Response:
        with self._lock:
            issued = self._current(_bearer(request))
            installation = self.installations.get(issued.installation_id) if issued else None
        if installation is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        names = installation.repositories
        body = {"total_count": len(names), "repositories": [{"name": n} for n in names]}
        return JSONResponse(body)

    async def _user_installations(self, request: Request) -> Response:
        reachable = self.users.get(_bearer(request) or "")
        if reachable is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        per_page = int(request.query_params.get("per_page", "30"))
        page = int(request.query_params.get("page", "1"))
        ids = sorted(reachable)[(page - 1) * per_page : page * per_page]
        listed = [{"id": int(i), "app_id": self.installations[i].app_id} for i in ids]
        return JSONResponse({"total_count": len(reachable), "installations": listed})

    async def _revoke(self, request: Request) -> Response:
        token = _bearer(request)
        with self._lock:
            if self._current(token) is None:
                return JSONResponse({"message": "Bad credentials"}, status_code=401)
            del self.tokens[token or ""]
        return Response(status_code=204)


# --- Google --------------------------------------------------------------------------------


class GoogleTokenEmulator(_Served):
    """Google's OAuth 2.0 token endpoint for service accounts (see the module docstring).

    ``accounts``: client_email -> (key id, public key); ``unauthorized_subjects``: users
    no delegation covers (``unauthorized_client``); ``claims`` / ``header``: the last
    verified assertion's; ``mints``: access tokens per client_email; ``issued``: every
    access token minted, with its account and subject.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.token_url = f"{self.base_url}/token"
        self.accounts: dict[str, tuple[str, RSAKey]] = {}
        self.unauthorized_subjects: set[str] = set()
        self.claims: dict[str, Any] | None = None
        self.header: dict[str, Any] | None = None
        self.mints: Counter[str] = Counter()
        self.issued: dict[str, tuple[str, str | None]] = {}
        self.app = Starlette(routes=[Route("/token", self._token, methods=["POST"])])

    def register(
        self, client_email: str, key_id: str, key: rsa.RSAPublicKey | rsa.RSAPrivateKey
    ) -> None:
        self.accounts[client_email] = (key_id, _public(key))

    def _grant_error(self, description: str) -> JSONResponse:
        return self._refuse(
            400, {"error": "invalid_grant", "error_description": description}, description
        )

    async def _token(self, request: Request) -> Response:
        if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            return self._refuse(400, {"error": "invalid_request"}, "not a form")
        form = dict(parse_qsl((await request.body()).decode("utf-8")))
        if form.get("grant_type") != JWT_BEARER:
            return self._refuse(400, {"error": "unsupported_grant_type"}, "grant_type")
        assertion = form.get("assertion", "")
        header, claims = _segment(assertion, 0) or {}, _segment(assertion, 1) or {}
        account = self.accounts.get(str(claims.get("iss", "")))
        if account is None or header.get("kid") != account[0]:
            return self._grant_error("Invalid JWT Signature.")
        try:
            verified = jwt.decode(assertion, account[1], algorithms=["RS256"])
        except (JoseError, ValueError):
            return self._grant_error("Invalid JWT Signature.")
        claims = dict(verified.claims)
        if claims.get("aud") != self.token_url:
            return self._grant_error("Invalid JWT: audience")
        iat, exp, now = claims.get("iat"), claims.get("exp"), self.clock()
        if (
            not isinstance(iat, int)
            or not isinstance(exp, int)
            or exp - iat > 3600
            or iat > now + 60
            or exp <= now
        ):
            return self._grant_error(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim."
            )
        if not isinstance(claims.get("scope"), str) or not claims["scope"].strip():
            body = {"error": "invalid_scope", "error_description": "Invalid OAuth scope"}
            return self._refuse(400, body, "no scope")
        subject = claims.get("sub")
        if subject in self.unauthorized_subjects:
            body = {
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens "
                "using this method, or client not authorized for any of the scopes requested.",
            }
            return self._refuse(401, body, "subject not delegated")
        token = "ya29." + secrets.token_urlsafe(40)
        with self._lock:
            self.header, self.claims = dict(verified.header), claims
            self.mints[str(claims["iss"])] += 1
            self.issued[token] = (str(claims["iss"]), subject)
        return JSONResponse({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})


# --- two-step providers: Tableau and Looker --------------------------------------------------


@dataclass
class _Session:
    provider: str
    credential: str  # the PAT name or client id that signed in
    expires_at: float


class TwoStepEmulator(_Served):
    """Tableau's PAT sign-in and Looker's API login (see the module docstring).

    ``tableau_pats``: PAT name -> (secret, site contentUrl); ``looker_keys``: client id ->
    client secret; ``mints``: sessions started per PAT name or client id; ``requests``: the
    last sign-in's headers and parsed body, per provider; ``servers``: the hosts each
    provider's URLs named.
    """

    TABLEAU_SESSION = 240 * 60  # Tableau Server's default session length
    LOOKER_SESSION = 3600

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.tableau_pats: dict[str, tuple[str, str]] = {}
        self.looker_keys: dict[str, str] = {}
        self.mints: Counter[str] = Counter()
        self.requests: dict[str, tuple[dict[str, str], Any]] = {}
        self.servers: list[str] = []
        self.sessions: dict[str, _Session] = {}
        self.site_ids: dict[str, str] = {}
        prefix_t = "/tableau/{server}/api/{version}"
        prefix_l = "/looker/{host}/api/4.0"
        self.app = Starlette(
            routes=[
                Route(f"{prefix_t}/auth/signin", self._tableau_signin, methods=["POST"]),
                Route(f"{prefix_t}/sessions/current", self._tableau_session, methods=["GET"]),
                Route(f"{prefix_l}/login", self._looker_login, methods=["POST"]),
                Route(f"{prefix_l}/user", self._looker_user, methods=["GET"]),
            ]
        )

    def loopback(self, provider: str, url: str) -> str:
        """The emulator's URL for a catalog URL (``https://{server}/api/...``)."""
        return f"{self.base_url}/{provider}/{url.removeprefix('https://')}"

    def _start(self, provider: str, credential: str, lifetime: int) -> str:
        token = secrets.token_hex(16)
        with self._lock:
            if provider == "tableau":  # a new sign-in ends the PAT's earlier session
                for old, session in list(self.sessions.items()):
                    if session.provider == provider and session.credential == credential:
                        del self.sessions[old]
            self.sessions[token] = _Session(provider, credential, self.clock() + lifetime)
            self.mints[credential] += 1
        return token

    def _session(self, provider: str, token: str | None) -> _Session | None:
        with self._lock:
            session = self.sessions.get(token or "")
        if session is None or session.provider != provider or session.expires_at <= self.clock():
            return None
        return session

    async def _tableau_signin(self, request: Request) -> Response:
        self.servers.append(request.path_params["server"])
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        self.requests["tableau"] = (dict(request.headers), body)
        if request.headers.get("accept") != "application/json":
            # Tableau answers XML unless asked for JSON.
            xml = '<?xml version="1.0"?><tsResponse><credentials token="x"/></tsResponse>'
            return Response(xml, media_type="application/xml")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return self._refuse(400, {"error": {"code": "400000"}}, "not JSON")
        credentials = body.get("credentials") if isinstance(body, dict) else None
        credentials = credentials if isinstance(credentials, dict) else {}
        name = credentials.get("personalAccessTokenName")
        site = credentials.get("site")
        content_url = site.get("contentUrl") if isinstance(site, dict) else None
        known = self.tableau_pats.get(name) if isinstance(name, str) else None
        if (
            known is None
            or credentials.get("personalAccessTokenSecret") != known[0]
            or content_url != known[1]
        ):
            error = {
                "summary": "Signin Error",
                "detail": "Error signing in to Tableau Server",
                "code": "401001",
            }
            return self._refuse(401, {"error": error}, "PAT refused")
        assert isinstance(name, str)
        token = self._start("tableau", name, self.TABLEAU_SESSION)
        site_id = self.site_ids.setdefault(content_url or "", str(uuid.uuid4()))
        answer = {
            "credentials": {
                "token": token,
                "estimatedTimeToExpiration": "177:05:38",  # the PAT's, not the session's
                "site": {"id": site_id, "contentUrl": content_url},
                "user": {"id": str(uuid.uuid5(uuid.NAMESPACE_OID, name))},
            }
        }
        return JSONResponse(answer)

    async def _tableau_session(self, request: Request) -> Response:
        session = self._session("tableau", request.headers.get("x-tableau-auth"))
        if session is None:
            error = {"summary": "Unauthorized Access", "detail": "Invalid token", "code": "401002"}
            return JSONResponse({"error": error}, status_code=401)
        return JSONResponse({"session": {"user": {"name": session.credential}}})

    async def _looker_login(self, request: Request) -> Response:
        self.servers.append(request.path_params["host"])
        if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            return self._refuse(400, {"message": "Bad Request"}, "not a form")
        form = dict(parse_qsl((await request.body()).decode("utf-8")))
        self.requests["looker"] = (dict(request.headers), form)
        client_id = form.get("client_id", "")
        if client_id not in self.looker_keys or self.looker_keys[client_id] != form.get(
            "client_secret"
        ):
            body = {
                "message": "Not found",
                "documentation_url": "https://cloud.google.com/looker/docs/",
            }
            return self._refuse(404, body, "API key refused")
        token = self._start("looker", client_id, self.LOOKER_SESSION)
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.LOOKER_SESSION}
        )

    async def _looker_user(self, request: Request) -> Response:
        session = self._session("looker", _bearer(request, "token"))
        if session is None:
            return JSONResponse({"message": "Requires authentication"}, status_code=401)
        return JSONResponse({"id": "1", "credentials_api3": [{"client_id": session.credential}]})
