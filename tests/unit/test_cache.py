"""The container cache behind `list_pods` while an event stream is open: pure bookkeeping."""

from __future__ import annotations

import pytest

from reconciler import labels, observe
from reconciler.engine.cache import ContainerCache

pytestmark = pytest.mark.unit


def raw(cid: str, state: str = "running") -> observe.ContainerJSON:
    return observe.ContainerJSON(
        Id=cid, Names=[f"/{cid}"], Image="app:1", State=state, Status="", Created=1,
        Labels={labels.MANAGED: "true", labels.UID: f"uid-{cid}"},
    )


def filled(*ids: str) -> ContainerCache:
    cache = ContainerCache()
    cache.opened()
    token, _, full = cache.pending()
    assert full
    cache.replace_all([raw(i) for i in ids], token)
    return cache


def states(cache: ContainerCache) -> dict[str, str]:
    return {r["Id"]: r["State"] for r in cache.snapshot()}


def test_needs_a_full_list_until_one_is_stored_while_a_stream_is_open() -> None:
    cache = ContainerCache()
    assert not cache.live
    token, _, full = cache.pending()
    cache.replace_all([raw("a")], token)  # no stream: nothing to keep it fresh, not stored
    assert full and cache.pending()[2] and cache.snapshot() == []
    cache.opened()
    token, _, full = cache.pending()
    assert cache.live and full
    cache.replace_all([raw("a")], token)
    assert cache.pending()[1:] == ({}, False)
    assert states(cache) == {"a": "running"}


def test_nothing_dirty_means_nothing_to_refresh() -> None:
    cache = filled("a", "b")
    assert cache.pending()[1] == {}
    assert states(cache) == {"a": "running", "b": "running"}


def test_dirty_ids_are_taken_once_and_refreshed() -> None:
    cache = filled("a", "b")
    cache.mark_dirty("a")
    token, todo, _ = cache.pending()
    assert todo == {"a": ""}
    assert cache.pending()[1] == {}
    cache.apply_refresh([raw("a", "exited")], todo, token)
    assert states(cache) == {"a": "exited", "b": "running"}


def test_a_refreshed_id_that_is_not_listed_is_gone() -> None:
    cache = filled("a", "b")
    cache.mark_dirty("b")
    token, todo, _ = cache.pending()
    cache.apply_refresh([], todo, token)
    assert states(cache) == {"a": "running"}


def test_the_last_event_about_a_container_is_kept_and_ours_do_not_hide_it() -> None:
    cache = filled("a", "b")
    cache.mark_dirty("a", event="start")
    cache.mark_dirty("a", event="die")
    cache.mark_dirty("a")  # our own action after the engine's event
    cache.mark_dirty("b")
    assert cache.pending()[1] == {"a": "die", "b": ""}


def test_a_new_container_is_added_by_its_refresh() -> None:
    cache = filled("a")
    cache.mark_dirty("c")
    token, todo, _ = cache.pending()
    cache.apply_refresh([raw("c", "created")], todo, token)
    assert states(cache) == {"a": "running", "c": "created"}


def test_a_full_list_is_told_of_the_deaths_heard_before_it() -> None:
    cache = filled("a")
    cache.mark_dirty("a", event="die")
    cache.invalidate()  # the resync: the engine's list may not show the death yet
    assert cache.pending()[1:] == ({"a": "die"}, True)
    cache = filled("a")
    cache.opened()
    cache.mark_dirty("a", event="die")
    cache.closed()
    cache.mark_dirty("a", event="die")  # heard on the stream still open
    assert cache.pending()[1:] == ({"a": "die"}, True)


def test_a_change_during_a_full_list_is_refreshed_after_it() -> None:
    cache = ContainerCache()
    cache.opened()
    token, _, _ = cache.pending()
    cache.mark_dirty("a")  # the engine's event, while the list is under way
    cache.replace_all([raw("a")], token)
    assert cache.pending()[1] == {"a": ""}


def test_a_change_during_a_refresh_is_refreshed_again() -> None:
    cache = filled("a")
    cache.mark_dirty("a")
    token, todo, _ = cache.pending()
    cache.mark_dirty("a")
    cache.apply_refresh([raw("a")], todo, token)
    assert cache.pending()[1] == {"a": ""}


@pytest.mark.parametrize("reset", ["invalidate", "closed", "opened"])
def test_a_reset_forces_a_full_list_and_drops_lists_begun_before_it(reset: str) -> None:
    cache = filled("a")
    cache.opened()  # a second stream, so that closing one leaves the cache usable
    token, _, _ = cache.pending()
    cache.mark_dirty("a")
    getattr(cache, reset)()
    cache.replace_all([raw("stale")], token)
    cache.apply_refresh([raw("stale")], ["a"], token)
    assert cache.snapshot() == []
    token, todo, full = cache.pending()
    assert full and todo == {"a": ""}  # still looked at: the full list may predate it
    cache.replace_all([raw("b")], token)
    assert states(cache) == {"b": "running"}


def test_a_closed_stream_stops_the_cache_until_another_opens() -> None:
    cache = filled("a")
    cache.closed()
    assert not cache.live
    cache.mark_dirty("a")  # no stream: nothing is recorded
    token, todo, full = cache.pending()
    assert full and todo == {}
    cache.replace_all([raw("a")], token)
    assert cache.snapshot() == []
    cache.closed()  # an extra close does not go below zero
    cache.opened()
    assert cache.live
