"""The two ASGI apps of the HTTP benchmark, as uvicorn ``--factory`` targets.

``benchmarks/http.py`` runs each one in its own ``python -m uvicorn --factory`` process with
the same server settings; the apps read what they need from ``BENCH_HTTP_*`` variables.

* ``oauthvault_app``: the real service (``oauthvault.service.create_app``), built the way the
  tests build it: a TOML service config plus explicit ``Settings``.
* ``floor_app``: the floor of the token endpoint: a bare FastAPI route that takes the same
  three query parameters, does one ``redis.asyncio`` GET of a value as large as the vault's
  cached record, and returns a JSON body the size of the service's answer.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException

from benchmarks.dataset import ACCESS, SCOPE

CONFIG_ENV = "BENCH_HTTP_CONFIG"
DATABASE_ENV = "BENCH_HTTP_DATABASE_URL"
REDIS_ENV = "BENCH_HTTP_REDIS_URL"
KEY_ENV = "BENCH_HTTP_ENCRYPTION_KEY"

FLOOR_PATH = "/floor/token"
FLOOR_PREFIX = "bench:http-floor:"


def floor_cache_name(provider: str, workspace_id: str, actor_id: str) -> str:
    return f"{FLOOR_PREFIX}{provider}:{workspace_id}:{actor_id}"


def oauthvault_app() -> FastAPI:
    from oauthvault import Settings
    from oauthvault.service import create_app
    from oauthvault.service.config import load_service_config

    config = load_service_config(Path(os.environ[CONFIG_ENV]), {})
    settings = Settings.load(
        database_url=os.environ[DATABASE_ENV],
        redis_url=os.environ[REDIS_ENV],
        oauth_encryption_key=os.environ[KEY_ENV],
    )
    return create_app(config, settings)


def floor_app() -> FastAPI:
    client = aioredis.Redis.from_url(os.environ[REDIS_ENV])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await client.ping()
        yield
        await client.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get(FLOOR_PATH)
    async def token(provider: str, workspace_id: str, actor_id: str) -> dict[str, str]:
        value = await client.get(floor_cache_name(provider, workspace_id, actor_id))
        if value is None:
            raise HTTPException(404)
        # The service's answer: the same four fields, the same sizes.
        return {
            "access_token": ACCESS,
            "token_type": "Bearer",
            "expires_at": "2030-01-01T00:00:00.000000Z",
            "scope": SCOPE,
        }

    return app
