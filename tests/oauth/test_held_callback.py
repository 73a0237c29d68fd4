"""Issue 26 (24): a form_post callback's resume handle is kept under its provider, so one
shown at another provider's callback finds nothing and stays usable at its own."""

from __future__ import annotations

import asyncio

from oauthvault import AsyncOAuthTokenCache
from oauthvault.connect.flow import AsyncConnector


def test_a_resume_handle_at_another_provider_is_not_used_up(postgres_url, key, clock):
    async def run():
        async with AsyncOAuthTokenCache(postgres_url, None, key, clock=clock) as vault:
            connector = AsyncConnector(vault, {})
            try:
                handle = await connector.hold_callback("apple", {"code": "c", "state": "s"})
                return (
                    await connector.take_held_callback("google", handle),
                    await connector.take_held_callback("apple", handle),
                    await connector.take_held_callback("apple", handle),
                )
            finally:
                await connector.aclose()

    elsewhere, here, again = asyncio.run(run())
    assert elsewhere is None
    assert here == {"code": "c", "state": "s"}
    assert again is None
