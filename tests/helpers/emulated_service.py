"""The oauthvault service configured against the provider emulator, for the conformance,
integration, client-credentials and form_post tests: one emulator, one service on
PostgreSQL (no Redis), an API key, and an HTTP client that sends it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from oauthvault import Settings, generate_key
from oauthvault.providers.spec import ProviderSpec
from oauthvault.service import create_app
from oauthvault.service.apikeys import generate_api_key, hash_api_key
from oauthvault.service.config import load_service_config

from tests.helpers.emulations import Emulation
from tests.helpers.net import free_port
from tests.helpers.provider_emulator import ProviderEmulator, make_clients
from tests.helpers.service_harness import UvicornThread

__all__ = ["EmulatedService", "emulated_service"]


@dataclass
class EmulatedService:
    """A running emulator and service. ``api`` is an ``httpx.Client`` on the service with
    the API key set; ``config_path``, ``database_url`` and ``encryption_key`` are what the
    service runs with (for the CLI and the library)."""

    emulator: ProviderEmulator
    base_url: str
    api: httpx.Client
    config_path: Path
    database_url: str
    encryption_key: str


@contextmanager
def emulated_service(
    catalog: Mapping[str, ProviderSpec],
    emulations: Mapping[str, Emulation],
    *,
    database_url: str,
    directory: Path,
    extra_keys: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    extra_toml: str = "",
) -> Iterator[EmulatedService]:
    """Start the emulator for ``catalog`` and a service whose ``[providers.*]`` tables point
    every provider at it. ``extra_keys`` maps a provider name to TOML lines added to its
    table (``provider = "google"``, a fixed ``tenant``). ``host`` is the service's public
    host (``localhost`` makes it another site than the emulator's ``127.0.0.1``);
    ``extra_toml`` is added to the end of the file (``[branding]``, ``[admin]``)."""
    port = free_port()
    base_url = f"http://{host}:{port}"
    emulator = ProviderEmulator(catalog, emulations, make_clients(catalog), base_url).start()
    try:
        api_key = generate_api_key()
        tables = emulator.config_toml()
        for name, lines in (extra_keys or {}).items():
            header = f"[providers.{name}]\n"
            tables = tables.replace(header, header + lines.rstrip("\n") + "\n")
        path = directory / "oauthvault.toml"
        path.write_text(
            f'[service]\npublic_url = "{base_url}"\nreturn_urls = ["{base_url}/app/"]\n\n'
            f'[[api_keys]]\nname = "tests"\nsha256 = "{hash_api_key(api_key)}"\n\n{tables}'
            f"\n{extra_toml}\n"
        )
        key = generate_key()
        settings = Settings.load(database_url=database_url, redis_url="", oauth_encryption_key=key)
        server = UvicornThread(create_app(load_service_config(path, {}), settings), port)
        server.start()
        try:
            headers = {"Authorization": f"Bearer {api_key}"}
            with httpx.Client(base_url=base_url, headers=headers, timeout=15) as api:
                yield EmulatedService(emulator, base_url, api, path, database_url, key)
        finally:
            server.stop()
    finally:
        emulator.stop()
