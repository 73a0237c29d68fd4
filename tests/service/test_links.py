"""Issue 26 (11): a connect link re-issued for its parameter form keeps its first expiry.
Issue 26 (2, 24): a link is found only under its provider, a page's link only with its
browser's cookie, a host-bound link only with its secret; a miss uses nothing up."""

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
                found = await links.take(token, "shopify")
                assert found is not None and found.expires_at == expires_at
                token, renewed = await links.create(found)
                assert renewed == expires_at
            clock.advance(60)  # 610 s after it was issued
            return await links.take(token, "shopify")

    assert asyncio.run(run()) is None


def test_a_link_taken_in_time_works_once(postgres_url, key, clock):
    async def run():
        async with AsyncOAuthTokenCache(postgres_url, None, key, clock=clock) as vault:
            links = ConnectLinks(vault, ttl=600)
            token, _ = await links.create(ConnectLink("shopify", "ws", "u", None))
            clock.advance(599)
            return await links.take(token, "shopify"), await links.take(token, "shopify")

    first, again = asyncio.run(run())
    assert first is not None and first.actor_id == "u"
    assert again is None


def test_a_link_shown_at_another_provider_is_not_used_up(postgres_url, key, clock):
    async def run():
        async with AsyncOAuthTokenCache(postgres_url, None, key, clock=clock) as vault:
            links = ConnectLinks(vault, ttl=600)
            token, _ = await links.create(ConnectLink("shopify", "ws", "u", None))
            return await links.take(token, "google"), await links.take(token, "shopify")

    elsewhere, here = asyncio.run(run())
    assert elsewhere is None
    assert here is not None and here.provider == "shopify"


def test_a_pages_link_is_found_only_with_its_browsers_cookie(postgres_url, key, clock):
    async def run():
        async with AsyncOAuthTokenCache(postgres_url, None, key, clock=clock) as vault:
            links = ConnectLinks(vault, ttl=600)
            token, _ = await links.create(ConnectLink("google", "ws", "u", None), browser="mine")
            return (
                await links.take(token, "google"),
                await links.take(token, "google", browser="theirs"),
                await links.take(token, "google", browser="mine"),
            )

    bare, other, mine = asyncio.run(run())
    assert bare is None and other is None
    assert mine is not None and mine.actor_id == "u"


def test_a_host_bound_link_is_found_only_with_its_secret(postgres_url, key, clock):
    async def run():
        async with AsyncOAuthTokenCache(postgres_url, None, key, clock=clock) as vault:
            links = ConnectLinks(vault, ttl=600)
            link = ConnectLink("google", "ws", "u", None, workspace_name="Acme")
            token, _, secret = await links.create_bound(link)
            return secret, (
                await links.take(token, "google"),
                await links.take(token, "google", secret="wrong"),
                await links.take(token, "google", secret=secret),
            )

    secret, (bare, wrong, right) = asyncio.run(run())
    assert len(secret) >= 43
    assert bare is None and wrong is None
    assert right is not None and right.workspace_name == "Acme"
