"""Items in memory: ids, signatures, edit dates, and creating, editing, deleting and listing them.

An `Item` is immutable: an edit replaces it with a new one. That keeps a snapshot (a list of the
current items) consistent while `persistence` serialises it on another thread. Every edit gets a
new signature and a newer `lastEditDate`; edit dates are strictly increasing within the store so
that "edited after X" queries never miss an edit made in the same millisecond as X.
Listeners are told about every change (persistence, webhook call-outs).
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from alloysync.emulator.clock import format_timestamp, parse_timestamp, utc_now
from alloysync.emulator.designs import ITEM_ID_PATTERN, DesignRules
from alloysync.emulator.errors import item_not_found, signature_mismatch

DEFAULT_COLLECTION = "Live"
_ONE_MILLISECOND = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Item:
    """One Alloy item. `attributes` maps code to value and is never mutated after construction."""

    item_id: str
    design_code: str
    collection: str
    attributes: Mapping[str, Any]
    signature: str
    created: datetime
    last_edit: datetime

    def to_json(self, only_attributes: frozenset[str] | None = None) -> dict[str, Any]:
        """The item as Alloy sends it; `only_attributes` limits the attributes (None = all)."""
        attributes = [
            {"attributeCode": code, "value": value}
            for code, value in self.attributes.items()
            if only_attributes is None or code in only_attributes
        ]
        return {
            "itemId": self.item_id,
            "designCode": self.design_code,
            "collection": self.collection,
            "start": None,
            "end": None,
            "icon": "icon-asset",
            "colour": "#5a7d9a",
            "locked": False,
            "context": "Customer",
            "geometry": None,
            "attributes": attributes,
            "signature": self.signature,
            "lastEditDate": format_timestamp(self.last_edit),
            "createdDate": format_timestamp(self.created),
        }

    @classmethod
    def from_json(cls, raw: Any) -> Item:
        """An item from its `to_json` form (the state file); ValueError when it is not one."""
        if not isinstance(raw, dict):
            raise ValueError("an item must be a JSON object")
        item_id, design, collection, signature = (
            raw.get(key) for key in ("itemId", "designCode", "collection", "signature")
        )
        if not isinstance(item_id, str) or not ITEM_ID_PATTERN.match(item_id):
            raise ValueError(f"itemId {item_id!r} is not 24 lowercase hex digits")
        if not isinstance(design, str) or not isinstance(collection, str) or not isinstance(signature, str):
            raise ValueError(f"item {item_id}: designCode, collection and signature must be strings")
        created = parse_timestamp(str(raw.get("createdDate")))
        last_edit = parse_timestamp(str(raw.get("lastEditDate")))
        if created is None or last_edit is None:
            raise ValueError(f"item {item_id}: createdDate and lastEditDate must be ISO-8601 UTC date-times")
        attributes: dict[str, Any] = {}
        for entry in raw.get("attributes") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("attributeCode"), str):
                raise ValueError(f"item {item_id}: attributes must be {{attributeCode, value}} objects")
            attributes[entry["attributeCode"]] = entry.get("value")
        return cls(item_id, design, collection, attributes, signature, created, last_edit)


@dataclass(frozen=True)
class ItemDraft:
    """What a create request carries: an item that has no id yet."""

    design_code: str
    attributes: Mapping[str, Any]
    collection: str = DEFAULT_COLLECTION


class ChangeKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    RESET = "reset"


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    item: Item | None = None


ChangeListener = Callable[[Change], None]


class _ObjectIds:
    """24-hex ids shaped like MongoDB ObjectIds (Alloy's ids): seconds, a process tag, a counter."""

    def __init__(self) -> None:
        self._process_tag = secrets.token_bytes(5)
        self._counter = itertools.count(secrets.randbelow(1 << 24))

    def new(self) -> str:
        seconds = int(time.time()).to_bytes(4, "big")
        counter = (next(self._counter) % (1 << 24)).to_bytes(3, "big")
        return (seconds + self._process_tag + counter).hex()


def new_signature() -> str:
    return secrets.token_hex(12)


class ItemStore:
    """All items of one emulator, keyed by item id. Values are checked against `rules`."""

    def __init__(self, rules: DesignRules) -> None:
        self.rules = rules
        self._items: dict[str, Item] = {}
        self._listeners: list[ChangeListener] = []
        self._ids = _ObjectIds()
        self._last_stamp: datetime | None = None

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def __len__(self) -> int:
        return len(self._items)

    def snapshot(self) -> list[Item]:
        """The current items (safe to read on another thread: items are immutable)."""
        return list(self._items.values())

    def get(self, item_id: str) -> Item:
        item = self._items.get(item_id)
        if item is None:
            raise item_not_found(item_id)
        return item

    def create(self, draft: ItemDraft) -> Item:
        return self.create_many([draft])[0]

    def create_many(self, drafts: Iterable[ItemDraft]) -> list[Item]:
        """Create every draft, or none when any of them has a wrongly typed value."""
        checked = [(draft, self.rules.check(draft.design_code, draft.attributes)) for draft in drafts]
        created = []
        for draft, values in checked:
            stamp = self._next_stamp()
            item = Item(
                item_id=self._ids.new(),
                design_code=draft.design_code,
                collection=draft.collection,
                attributes={code: value for code, value in values.items() if value is not None},
                signature=new_signature(),
                created=stamp,
                last_edit=stamp,
            )
            self._items[item.item_id] = item
            created.append(item)
        for item in created:
            self._notify(Change(ChangeKind.CREATE, item))
        return created

    def edit(self, item_id: str, values: Mapping[str, Any], signature: str) -> Item:
        """A partial edit: the given attributes change (null clears one), the others keep their value."""
        current = self.get(item_id)
        if not secrets.compare_digest(signature, current.signature):
            raise signature_mismatch(item_id, signature)
        checked = self.rules.check(current.design_code, values)
        attributes = dict(current.attributes)
        for code, value in checked.items():
            if value is None:
                attributes.pop(code, None)
            else:
                attributes[code] = value
        edited = Item(
            item_id=current.item_id,
            design_code=current.design_code,
            collection=current.collection,
            attributes=attributes,
            signature=new_signature(),
            created=current.created,
            last_edit=self._next_stamp(),
        )
        self._items[item_id] = edited
        self._notify(Change(ChangeKind.UPDATE, edited))
        return edited

    def delete(self, item_id: str, signature: str | None) -> None:
        current = self.get(item_id)
        if signature is not None and not secrets.compare_digest(signature, current.signature):
            raise signature_mismatch(item_id, signature)
        del self._items[item_id]
        self._notify(Change(ChangeKind.DELETE, current))

    def load(self, items: Iterable[Item]) -> None:
        """Replace every item (loading the state file). Listeners are not told: nothing changed."""
        self._items = {item.item_id: item for item in items}
        newest = max((item.last_edit for item in self._items.values()), default=None)
        self._last_stamp = newest

    def clear(self) -> None:
        self._items = {}
        self._notify(Change(ChangeKind.RESET))

    def _next_stamp(self) -> datetime:
        stamp = utc_now()
        if self._last_stamp is not None and stamp <= self._last_stamp:
            stamp = self._last_stamp + _ONE_MILLISECOND
        self._last_stamp = stamp
        return stamp

    def _notify(self, change: Change) -> None:
        for listener in self._listeners:
            listener(change)
