"""Issue 26 (11): a connect link re-issued for its parameter form keeps its first expiry."""

from __future__ import annotations

import asyncio

from oauthvault import AsyncOAuthTokenCache
from oauthvault.service.links import ConnectLink, ConnectLinks


def test_showing_the_parameter_form_again_and_again_does_not_extend_a_link(
    postgres_url, key, clock
):
    async def run():
        async with AsyncOAuthTokenCache(postgres_url, None, key, clock=clock) as vault:
            links = ConnectLinks(vault, ttl=600)
            token, expires_at = await links.create(ConnectLink("shopify", "ws", "u", None))
            for _ in range(5):  # as the form route does: take the link, show a new one
                clock.advance(110)
                found = await links.take(token)
                assert found is not None and found.expires_at == expires_at
                token, renewed = await links.create(found)
                assert renewed == expires_at
            clock.advance(60)  # 610 s after it was issued
            return await links.take(token)

    assert asyncio.run(run()) is None


def test_a_link_taken_in_time_works_once(postgres_url, key, clock):
    async def run():
        async with AsyncOAuthTokenCache(postgres_url, None, key, clock=clock) as vault:
            links = ConnectLinks(vault, ttl=600)
            token, _ = await links.create(ConnectLink("shopify", "ws", "u", None))
            clock.advance(599)
            return await links.take(token), await links.take(token)

    first, again = asyncio.run(run())
    assert first is not None and first.actor_id == "u"
    assert again is None
