"""Which item views the poller may skip (serve/applied_views.py), and the query parser that skips
them unparsed (`parse_page` with `known_view`): pure, no Redis or emulator."""

from __future__ import annotations

import time
from typing import Any

import pytest

from alloysync.alloy.models import Item
from alloysync.alloy.responses import UnexpectedResponse, parse_page
from alloysync.serve.applied_views import AppliedViews


def an_item(item_id: str, signature: str | None) -> Item:
    return Item.model_validate({"itemId": item_id, "designCode": "designs_jobs", "signature": signature})


def test_a_view_counts_as_applied_only_after_it_is_remembered_and_only_with_its_signature() -> None:
    views = AppliedViews(overlap_seconds=10)
    views.enter_term("lease-1", "redis-a")
    assert not views.has("a", "s1")
    views.remember([an_item("a", "s1"), an_item("b", None)])
    assert views.has("a", "s1")
    assert not views.has("a", "s2")  # edited since: a new view
    assert len(views) == 1  # a view without a signature is never remembered


def test_a_new_lease_term_or_a_restarted_redis_forgets_every_view() -> None:
    views = AppliedViews(overlap_seconds=10)
    views.enter_term("lease-1", "redis-a")
    views.remember([an_item("a", "s1")])
    views.enter_term("lease-1", "redis-a")  # the same term: kept
    assert views.has("a", "s1")
    views.enter_term("lease-1", "redis-b")  # Redis restarted: its AOF may have lost writes
    assert not views.has("a", "s1")
    views.remember([an_item("a", "s1")])
    views.enter_term("lease-2", "redis-b")  # another replica may have held the lease meanwhile
    assert not views.has("a", "s1")


def test_views_not_sighted_for_longer_than_the_overlap_and_a_margin_are_pruned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    views = AppliedViews(overlap_seconds=10)
    views.enter_term("lease-1", "redis-a")
    views.remember([an_item("old", "s1"), an_item("kept", "s2")])
    later = time.monotonic() + views.keep_seconds - 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert views.has("kept", "s2")  # a sighting keeps it
    monkeypatch.setattr(time, "monotonic", lambda: later + 2)
    views.enter_term("lease-1", "redis-a")
    assert not views.has("old", "s1")
    assert views.has("kept", "s2")


def test_our_own_edit_of_an_applied_view_counts_as_applied_and_of_any_other_view_does_not() -> None:
    views = AppliedViews(overlap_seconds=10)
    views.enter_term("lease-1", "redis-a")
    views.remember([an_item("a", "s1")])
    views.follow_own_edit("a", based_on="s1", signature="s2")
    assert views.has("a", "s2")
    # An edit that landed on a view the poller never applied (someone edited in between, the
    # edit was retried on the fresh signature) leaves the new view to be applied.
    views.follow_own_edit("a", based_on="s-other", signature="s3")
    assert not views.has("a", "s3")
    views.follow_own_edit("b", based_on=None, signature="s9")
    assert not views.has("b", "s9")


def test_parse_page_lists_known_views_by_id_without_parsing_them() -> None:
    known = {("a", "s1")}
    payload: dict[str, Any] = {
        "results": [
            {"itemId": "a", "designCode": "designs_jobs", "signature": "s1"},
            {"itemId": "b", "designCode": "designs_jobs", "signature": "s1"},
            {"itemId": "a2", "signature": "s2"},  # not known: parsed (and refused below)
        ],
        "pageSize": 100,
    }
    with pytest.raises(UnexpectedResponse):  # the unknown, malformed one is still validated
        parse_page(100, lambda item_id, signature: (item_id, signature) in known)(payload)
    payload["results"] = payload["results"][:2]
    page = parse_page(100, lambda item_id, signature: (item_id, signature) in known)(payload)
    assert page.known == ["a"]
    assert [item.itemId for item in page.items] == ["b"]
    assert page.size == 2
    without = parse_page(100)(payload)
    assert [item.itemId for item in without.items] == ["a", "b"] and without.known == []
