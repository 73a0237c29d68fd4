"""Run the local oidc-provider test server (tests/oidc_provider/server.mjs) from Python.

Example::

    with OIDCServer(auto_approve=True, ttl={"AccessToken": 2}) as op:
        httpx.get(f"{op.issuer}/.well-known/openid-configuration")
        op.fail(status=503, count=1)  # next token request gets a 503
        assert op.stats().get("refresh_token", 0) == 0
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

# The node project stays at tests/oidc_provider (scripts/local-provider runs it from there).
PROVIDER_DIR = Path(__file__).resolve().parents[1] / "oidc_provider"

DEFAULT_REDIRECT_URI = "http://127.0.0.1:8765/callback"
DEFAULT_CLIENT: dict[str, Any] = {
    "client_id": "test-client",
    "client_secret": "test-secret",
    "redirect_uris": [DEFAULT_REDIRECT_URI],
    "token_endpoint_auth_method": "client_secret_basic",
    "grant_types": ["authorization_code", "refresh_token"],
}


def local_provider_toml(issuer: str) -> str:
    """A ``[providers.local]`` table for the provider at ``issuer`` and its default client,
    for a vault's providers file."""
    return (
        f'[providers.local]\nissuer = "{issuer}"\n'
        f'client_id = "{DEFAULT_CLIENT["client_id"]}"\n'
        f'client_secret = "{DEFAULT_CLIENT["client_secret"]}"\n'
    )


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(
            f"`{tool}` not found on PATH: Node.js (>= 20) and npm are required to run the "
            "local OpenID Connect provider used by the tests"
        )
    return path


@functools.cache
def _signing_jwk() -> dict[str, Any]:
    """One RSA signing key per test process, handed to every provider it starts."""
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    public = numbers.public_numbers
    fields = {
        "n": public.n,
        "e": public.e,
        "d": numbers.d,
        "p": numbers.p,
        "q": numbers.q,
        "dp": numbers.dmp1,
        "dq": numbers.dmq1,
        "qi": numbers.iqmp,
    }
    return {"kty": "RSA", **{name: _base64url_uint(value) for name, value in fields.items()}}


def _base64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _process_state(pid: int) -> str:
    """What a process that has not become ready is doing, for the error message."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
        load = Path("/proc/loadavg").read_text().strip()
    except OSError as exc:
        return f"(process state unavailable: {exc})"
    state = next((line for line in status.splitlines() if line.startswith("State:")), "State: ?")
    return f"{state}; waiting in {wchan or '-'}; load average {load}"


def ensure_installed() -> None:
    """Install the provider's npm dependencies (from package-lock.json) if they are missing."""
    if (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    npm = _require("npm")
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=PROVIDER_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"`npm ci` failed in {PROVIDER_DIR}:\n{result.stdout}\n{result.stderr}")


class OIDCServer:
    """A throwaway OpenID Connect provider on 127.0.0.1 with an in-memory store.

    ``ttl`` keys are oidc-provider model names (AccessToken, RefreshToken, AuthorizationCode,
    IdToken, ...) in seconds. With ``auto_approve`` the login/consent interaction completes by
    redirects alone (subject = ``login_hint`` or ``test-user``); otherwise HTML pages are served
    (``#login``/``#submit`` then ``#authorize``/``#deny``).
    """

    def __init__(
        self,
        *,
        clients: list[dict[str, Any]] | None = None,
        ttl: dict[str, int] | None = None,
        auto_approve: bool = False,
        startup_timeout: float = 30.0,
    ) -> None:
        self.config: dict[str, Any] = {
            "clients": clients if clients is not None else [dict(DEFAULT_CLIENT)],
            "ttl": ttl or {},
            "auto_approve": auto_approve,
        }
        self.startup_timeout = startup_timeout
        self._issuer: str | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._config_path: Path | None = None
        self._log: IO[str] | None = None

    @property
    def issuer(self) -> str:
        if self._issuer is None:
            raise RuntimeError("OIDCServer is not running")
        return self._issuer

    def start(self) -> OIDCServer:
        node = _require("node")
        ensure_installed()
        config = {**self.config, "signing_jwk": _signing_jwk()}
        fd, path = tempfile.mkstemp(prefix="oidc-config-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(config, f)
        self._config_path = Path(path)
        # A start that does not answer in time is retried once with a fresh process, so one slow
        # start on a loaded machine is not a failed test; the error says what the process was doing.
        failures: list[str] = []
        for _attempt in range(2):
            started = time.monotonic()
            ready, diagnosis = self._launch(node, path)
            if ready is not None:
                self._issuer = ready
                return self
            failures.append(f"after {time.monotonic() - started:.1f} s: {diagnosis}")
        self.stop()
        raise RuntimeError("OIDC provider did not become ready:\n" + "\n".join(failures))

    def _launch(self, node: str, config_path: str) -> tuple[str | None, str]:
        """Start one provider process; its issuer, or None and what went wrong."""
        self._stop_process()
        # stderr goes to a file, not a pipe, so a chatty server can never block on a full pipe.
        self._log = tempfile.TemporaryFile("w+")
        self._proc = subprocess.Popen(
            [node, "server.mjs"],
            cwd=PROVIDER_DIR,
            env={**os.environ, "PORT": "0", "OIDC_CONFIG": config_path},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(self._proc.stdout, lines), daemon=True).start()
        try:
            return str(json.loads(lines.get(timeout=self.startup_timeout))["issuer"]), ""
        except (queue.Empty, ValueError, KeyError, TypeError) as exc:
            exit_code = self._proc.poll()
            state = (
                f"exited with {exit_code}"
                if exit_code is not None
                else _process_state(self._proc.pid)
            )
            return None, f"{type(exc).__name__}; {state}; stderr:\n{self._read_log()}"

    @staticmethod
    def _pump(stream: IO[str] | None, lines: queue.Queue[str]) -> None:
        # Keep draining stdout after the ready line; EOF (process died) unblocks start() too.
        assert stream is not None
        with stream:
            for line in stream:
                lines.put(line)
        lines.put("")

    def _read_log(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(method, f"{self.issuer}/__test__/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, int]:
        """Counters per token-endpoint grant_type (``<grant>``, ``<grant>_ok``,
        ``<grant>_failed``), ``injected_failures`` and ``revocation[_ok|_failed]``."""
        return dict(self._admin("GET", "stats"))

    def issued(self, after: int = 0) -> list[dict[str, Any]]:
        """Every access token issued so far (from the ``after``-th on), in order: ``token``,
        ``refresh`` (the refresh token issued with it, or ``None``), ``account`` (the
        subject), ``at`` (epoch seconds) and ``grant``."""
        return list(self._admin("GET", f"issued?after={after}"))

    def reset(self) -> None:
        """Zero all counters and cancel any pending injected failures."""
        self._admin("POST", "reset")

    def fail(
        self,
        status: int | None = None,
        *,
        count: int = 1,
        delay_ms: int | None = None,
        html: bool = False,
    ) -> None:
        """Make the next ``count`` token-endpoint requests fail with ``status`` (JSON error body,
        or with ``html`` an HTML error page without an error code) and/or stall for ``delay_ms``
        first. A delay without a status is then served normally."""
        body = {"status": status, "count": count, "delay_ms": delay_ms, "html": html}
        self._admin("POST", "fail", body)

    def fail_revocations(self, count: int = 1) -> None:
        """Make the next ``count`` revocation requests answer 503 (nothing is revoked)."""
        self._admin("POST", f"fail-revocations?count={count}")

    def drop_id_tokens(self, count: int = 1) -> None:
        """Make the next ``count`` successful code exchanges answer without their id_token."""
        self._admin("POST", f"drop-id-tokens?count={count}")

    def freeze(self) -> None:
        """Stop the provider's process (SIGSTOP): requests queue in its socket unanswered,
        as at a provider that stalls; :meth:`thaw` lets it read and answer them."""
        assert self._proc is not None, "OIDCServer is not running"
        os.kill(self._proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen provider run again (SIGCONT)."""
        assert self._proc is not None, "OIDCServer is not running"
        os.kill(self._proc.pid, signal.SIGCONT)

    def _stop_process(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._proc.pid, signal.SIGCONT)
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        self._stop_process()
        if self._config_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._config_path.unlink()
            self._config_path = None
        self._issuer = None

    def __enter__(self) -> OIDCServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
