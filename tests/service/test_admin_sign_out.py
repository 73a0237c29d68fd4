"""Signing out of the admin console ends the session for every copy of its cookie, on
every instance sharing the database (issue 26, item 26)."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from oauthvault import generate_key
from oauthvault.errors import StorageUnavailable
from oauthvault.service.admin_session import (
    AdminSessions,
    generate_admin_credential,
    hash_admin_credential,
)
from oauthvault.storage.admin_sessions import ended_sessions_at
from oauthvault.storage.location import parse_database_url
from oauthvault.storage.migrations import upgrade

from tests.helpers.service_harness import running_environment

CREDENTIAL = generate_admin_credential()
ADMIN = f'\n[admin]\ncredential_sha256 = "{hash_admin_credential(CREDENTIAL)}"'


def sign_in(base_url: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=10)
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/admin/login").text)
    assert found is not None
    answer = client.post("/admin/login", data={"csrf": found[1], "credential": CREDENTIAL})
    assert answer.status_code == 303, answer.text
    return client


def overview(base_url: str, cookie: str) -> httpx.Response:
    with httpx.Client(base_url=base_url, timeout=10, cookies={"oauthvault_admin": cookie}) as c:
        return c.get("/admin")


def test_a_copied_session_cookie_is_refused_after_signing_out_on_every_instance(
    tmp_path, postgres_url, _redis_checked
):
    key = generate_key()  # both instances share the key ring and the database
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        running_environment(
            tmp_path / "a",
            postgres_url,
            _redis_checked,
            key,
            auto_approve=True,
            service_settings=ADMIN,
        ) as first,
        running_environment(
            tmp_path / "b",
            postgres_url,
            _redis_checked,
            key,
            auto_approve=True,
            service_settings=ADMIN,
        ) as second,
    ):
        browser = sign_in(first.base_url)
        copied = browser.cookies["oauthvault_admin"]
        page = browser.get("/admin")
        assert page.status_code == 200
        assert overview(second.base_url, copied).status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        signed_out = browser.post("/admin/logout", data={"csrf": csrf[1]})
        assert signed_out.status_code == 303
        assert signed_out.headers["location"].endswith("/admin/login")
        browser.close()
        for instance in (first, second):
            refused = overview(instance.base_url, copied)
            assert refused.status_code == 303, instance.base_url
            assert refused.headers["location"].endswith("/admin/login")
        # A new sign-in still works.
        again = sign_in(second.base_url)
        assert again.get("/admin").status_code == 200
        again.close()


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path):
    if request.param == "sqlite":
        found = parse_database_url(f"sqlite:///{tmp_path / 'vault.db'}")
        upgrade(found)
        return found
    return parse_database_url(request.getfixturevalue("postgres_url"))


def test_ended_sessions_are_kept_until_their_expiry(location):
    ended = ended_sessions_at(location, connect_timeout=3)
    now = time.time()
    sessions = AdminSessions(lambda: None, "0" * 64, 300, clock=lambda: now)  # type: ignore[arg-type,return-value]
    assert sessions.now() == now
    ended.end("gone-soon", now + 10, now)
    ended.end("gone-soon", now + 10, now)  # twice: one row
    ended.end("later", now + 600, now)
    assert ended.ended("gone-soon") and ended.ended("later")
    assert not ended.ended("never-signed-out")
    ended.end("another", now + 600, now + 60)  # purges what expired before now + 60
    assert not ended.ended("gone-soon") and ended.ended("later")


def test_an_unmigrated_database_names_the_table(tmp_path):
    ended = ended_sessions_at(parse_database_url(f"sqlite:///{tmp_path / 'x.db'}"), 3)
    with pytest.raises(StorageUnavailable, match="oauth_admin_ended"):
        ended.ended("any")
