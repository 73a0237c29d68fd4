"""The local cache and the change feed's decisions, without I/O (a clock set by hand)."""

from __future__ import annotations

import inspect
import json

from oauthvault.cache.local import LocalCache
from oauthvault.crypto.keyring import KeyRing
from oauthvault.crypto.sealing import open_local_record, seal_local_record
from oauthvault.models import TokenSet
from oauthvault.storage.feed import ChangeListener, FeedLogic

RING = KeyRing.generate()
IDS = ("google", "ws", "u")  # a connection's ids: what local entries are kept under


class Tick:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(version: int, access: str = "a"):
    return seal_local_record(RING, IDS, TokenSet(access, "r", None, None, version=version))


def test_entries_are_served_only_while_live_and_only_with_a_current_ticket():
    local = LocalCache(size=10, max_age=60)
    assert local.ticket() is None  # not live yet: nothing is kept
    assert not local.put("k", record(1), 60, None)
    local.resume()
    ticket = local.ticket()
    local.suspend()
    local.resume()  # the feed came back: reads from before may have missed changes
    assert not local.put("k", record(1), 60, ticket)
    ticket = local.ticket()
    assert local.put("k", record(1), 60, ticket)
    assert open_local_record(RING, IDS, local.get("k")).access_token == "a"
    local.clear()
    assert not local.put("k", record(1), 60, ticket)  # clear() ends old tickets too


def test_older_versions_and_deleted_ones_are_refused():
    local = LocalCache(size=10, max_age=60)
    local.resume()
    local.heard("k", 5)
    assert not local.put("k", record(4), 60, local.ticket())
    assert local.put("k", record(5), 60, local.ticket())
    local.heard("k", 5, deleted=True)
    assert local.get("k") is None
    assert not local.put("k", record(5), 60, local.ticket())
    assert local.is_outdated("k", 5) and not local.is_outdated("k", 6)


def test_least_recently_used_goes_first_and_entries_expire():
    clock = Tick()
    local = LocalCache(size=2, max_age=10, clock=clock)
    local.resume()
    local.put("a", record(1), 60, local.ticket())
    local.put("b", record(2), 60, local.ticket())
    assert local.get("a") is not None  # a is now the most recent
    local.put("c", record(3), 60, local.ticket())
    assert local.get("b") is None and local.get("a") is not None
    clock.now = 11  # past max_age
    assert local.get("a") is None


def test_the_local_record_keeps_the_tokens_sealed_and_bound():
    sealed = record(3, access="ACCESS-SECRET-VALUE")
    assert b"ACCESS-SECRET-VALUE" not in sealed.sealed
    assert "ACCESS-SECRET-VALUE" not in repr(sealed)
    other = ("google", "ws", "someone-else")
    try:
        open_local_record(RING, other, sealed)
    except Exception as error:
        assert type(error).__name__ == "DecryptionError"
    else:
        raise AssertionError("a record opened for another connection")


def feed(clock: Tick) -> FeedLogic:
    local = LocalCache()
    return FeedLogic(
        "", "db", local, None, connect_timeout=3, heartbeat=1, probe_timeout=1, clock=clock
    )


def test_a_live_feed_whose_probes_cannot_be_sent_stops_being_trusted():
    clock = Tick()
    logic = feed(clock)
    payload = logic.new_probe()
    logic.received(payload)  # the first probe came back: live
    assert logic.state.live and logic.listener.live
    clock.now = 1.5
    assert logic.probe_due()
    failed = logic.new_probe()
    logic.probe_not_sent(failed)  # the database is unreachable from this process
    clock.now = 2.6
    assert logic.probe_overdue()  # the listener then suspends the local cache


def test_before_it_is_live_a_probe_that_was_not_sent_is_simply_sent_again():
    clock = Tick()
    logic = feed(clock)
    payload = logic.new_probe()
    logic.probe_not_sent(payload)
    assert not logic.awaiting_probe and logic.probe_due()


def test_a_malformed_notification_drops_the_local_cache():
    clock = Tick()
    logic = feed(clock)
    logic.received(logic.new_probe())
    local = logic.listener
    local.put("k", record(1), 60, local.ticket())
    logic.received(json.dumps(["google", "ws", "u", None, False]))
    assert local.get("k") is None and len(local) == 0


def test_the_local_cache_listens_to_the_feed_by_its_shape_alone():
    """storage/ does not import cache/: the feed calls a ChangeListener, and the local cache
    has every one of its methods, taking the same arguments the same way."""
    import oauthvault.storage.feed as feed_module

    assert "oauthvault.cache" not in inspect.getsource(feed_module)
    for name in ("heard", "suspend", "resume", "clear"):
        wanted = inspect.signature(getattr(ChangeListener, name)).parameters.values()
        has = inspect.signature(getattr(LocalCache, name)).parameters.values()
        assert [(p.name, p.kind) for p in has] == [(p.name, p.kind) for p in wanted], name
