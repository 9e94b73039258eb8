"""Items in memory: ids, signatures, edit dates, and creating, editing, deleting and listing them.

An `Item` is immutable: an edit replaces it with a new one. That keeps a snapshot (a list of the
current items) consistent while `persistence` serialises it on another thread. Every edit gets a
new signature and a newer edit date; edit dates are strictly increasing within the store so that
"edited after X" queries never miss an edit made in the same millisecond as X. The dates are
kept for AQS (`ItemProperty` `lastEditDate`/`createdDate`) and the state file; whether items are
*sent* with them is the caller's choice (`item_json`): real Alloy items carry none. What an item is
sent as is encoded once per item version and design version (`encoded_item`).
Every create and edit is checked against the item's design (`item_values`).
Listeners are told about every change (persistence, webhook call-outs).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from alloysync.emulator.clock import format_timestamp, parse_timestamp, utc_now
from alloysync.emulator.codes import HEX24, ObjectIds, new_signature
from alloysync.emulator.design_store import DesignStore
from alloysync.emulator.designs import DEFAULT_COLOUR, DEFAULT_ICON, GEOMETRY_CODE, Design
from alloysync.emulator.errors import design_not_found, item_not_found, signature_mismatch
from alloysync.emulator.item_values import check_edit, check_new_item
from alloysync.emulator.wire import encode_json

DEFAULT_COLLECTION = "Live"
END_OF_TIME = "9999-12-31T23:59:59.999Z"  # an item's `end` while it is current
_ONE_MILLISECOND = timedelta(milliseconds=1)

View = tuple[bool, frozenset[str] | None]  # item_dates, only_attributes (see `item_json`)


class Encodings:
    """What one item version has been sent as: its encoded JSON per view, for one design object."""

    __slots__ = ("design", "views")

    def __init__(self) -> None:
        self.design: Design | None = None
        self.views: dict[View, bytes] = {}


@dataclass(frozen=True)
class Item:
    """One Alloy item. `attributes` maps code to value and is never mutated after construction;
    `encodings` is `encoded_item`'s cache, which belongs to this version of the item."""

    item_id: str
    design_code: str
    collection: str
    attributes: Mapping[str, Any]
    signature: str
    created: datetime
    last_edit: datetime
    encodings: Encodings = field(default_factory=Encodings, init=False, repr=False, compare=False)

    def to_state(self) -> dict[str, Any]:
        """The item as the state file keeps it (with its dates)."""
        return {
            "itemId": self.item_id,
            "designCode": self.design_code,
            "collection": self.collection,
            "attributes": _attribute_list(self.attributes, None),
            "signature": self.signature,
            "lastEditDate": format_timestamp(self.last_edit),
            "createdDate": format_timestamp(self.created),
        }

    @classmethod
    def from_state(cls, raw: Any) -> Item:
        """An item from its `to_state` form (the state file); ValueError when it is not one."""
        if not isinstance(raw, dict):
            raise ValueError("an item must be a JSON object")
        item_id, design, collection, signature = (
            raw.get(key) for key in ("itemId", "designCode", "collection", "signature")
        )
        if not isinstance(item_id, str) or not HEX24.match(item_id):
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


def item_json(
    item: Item,
    design: Design | None,
    *,
    item_dates: bool,
    only_attributes: frozenset[str] | None = None,
) -> dict[str, Any]:
    """The item as Alloy sends it: title and subtitle rendered from the design's templates, icon and
    colour from the design, `start`/`end`, geometry; `lastEditDate`/`createdDate` only with
    `item_dates`. `only_attributes` limits the attributes (None = all)."""
    document: dict[str, Any] = {
        "itemId": item.item_id,
        "designCode": item.design_code,
        "collection": item.collection,
        "start": format_timestamp(item.created),
        "end": END_OF_TIME,
        "geometry": item.attributes.get(GEOMETRY_CODE),
        "icon": (design.icon if design is not None else None) or DEFAULT_ICON,
        "colour": (design.colour if design is not None else None) or DEFAULT_COLOUR,
        "locked": False,
        "context": design.context if design is not None else "Customer",
        "attributes": _attribute_list(item.attributes, only_attributes),
        "signature": item.signature,
        "title": design.render_title(item.attributes) if design is not None else "",
        "subtitle": design.render_subtitle(item.attributes) if design is not None else "",
    }
    if item_dates:
        document["lastEditDate"] = format_timestamp(item.last_edit)
        document["createdDate"] = format_timestamp(item.created)
    return document


def encoded_item(
    item: Item,
    design: Design | None,
    *,
    item_dates: bool,
    only_attributes: frozenset[str] | None = None,
) -> bytes:
    """`item_json` as encoded JSON (`encode_json`), rendered and encoded once per item version,
    design version and view.

    Invalidation: the encodings live on the `Item` and are kept only for the `Design` object they
    were rendered with. Items are immutable: an edit replaces the item with a new one (with a new
    signature), and a delete or reset drops it, so its encodings go with it. Designs are immutable
    too: a change (a new attribute, a reset, a new design under the same code) makes a new object,
    so the next send renders the item again. (The cache holds the design it was rendered with, so
    no other design object can take its identity.)
    """
    encodings = item.encodings
    if encodings.design is not design:
        encodings.design = design
        encodings.views = {}
    view = (item_dates, only_attributes)
    encoded = encodings.views.get(view)
    if encoded is None:
        document = item_json(item, design, item_dates=item_dates, only_attributes=only_attributes)
        encoded = encodings.views[view] = encode_json(document)
    return encoded


def _attribute_list(attributes: Mapping[str, Any], only: frozenset[str] | None) -> list[dict[str, Any]]:
    return [
        {"attributeCode": code, "value": value}
        for code, value in attributes.items()
        if only is None or code in only
    ]


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


class ItemStore:
    """All items of one emulator, keyed by item id; values are checked against `designs`."""

    def __init__(self, designs: DesignStore) -> None:
        self.designs = designs
        # In the order of their last edit: an edit moves the item to the end (see `in_edit_order`).
        self._items: dict[str, Item] = {}
        self._listeners: list[ChangeListener] = []
        self._ids = ObjectIds()
        self._last_stamp: datetime | None = None
        self.generation = 0  # counts the changes: results computed at one generation hold until the next
        # Whether `snapshot()` is in ascending lastEditDate order with no two items alike: every
        # create and edit takes a later stamp than any before (`_next_stamp`); only a loaded state
        # file with equal stamps breaks it (queries then sort as they would anyway).
        self.in_edit_order = True

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def __len__(self) -> int:
        return len(self._items)

    def snapshot(self) -> list[Item]:
        """The current items, in the order of their last edit (safe to read on another thread:
        items are immutable)."""
        return list(self._items.values())

    def get(self, item_id: str) -> Item:
        item = self._items.get(item_id)
        if item is None:
            raise item_not_found(item_id)
        return item

    # --- ItemLookup, for the value checks -----------------------------------------------------

    def design_of(self, item_id: str) -> str | None:
        item = self._items.get(item_id)
        return None if item is None else item.design_code

    def values_of(self, design_code: str, attribute_code: str) -> Iterable[tuple[str, Any]]:
        for item in self._items.values():
            if item.design_code == design_code and attribute_code in item.attributes:
                yield item.item_id, item.attributes[attribute_code]

    # --- changes ------------------------------------------------------------------------------

    def create(self, draft: ItemDraft) -> Item:
        return self.create_many([draft])[0]

    def create_many(self, drafts: Iterable[ItemDraft]) -> list[Item]:
        """Create every draft, or none when any of them breaks its design's rules."""
        checked = []
        for draft in drafts:
            design = self.designs.find(draft.design_code)
            if design is None:
                raise design_not_found(draft.design_code, status=400)
            checked.append((draft, check_new_item(design, draft.collection, draft.attributes, self)))
        created = []
        for draft, attributes in checked:
            stamp = self._next_stamp()
            item = Item(
                item_id=self._ids.new(),
                design_code=draft.design_code,
                collection=draft.collection,
                attributes=attributes,
                signature=new_signature(),
                created=stamp,
                last_edit=stamp,
            )
            self._items[item.item_id] = item
            created.append(item)
        self.generation += 1
        for item in created:
            self._notify(Change(ChangeKind.CREATE, item))
        return created

    def edit(self, item_id: str, values: Mapping[str, Any], signature: str) -> Item:
        """A partial edit: the given attributes change (null clears one), the others keep their value."""
        current = self.get(item_id)
        if not secrets.compare_digest(signature, current.signature):
            raise signature_mismatch(item_id, signature)
        design = self.designs.find(current.design_code)
        if design is None:
            raise design_not_found(current.design_code, status=400)
        edited = Item(
            item_id=current.item_id,
            design_code=current.design_code,
            collection=current.collection,
            attributes=check_edit(design, item_id, current.attributes, values, self),
            signature=new_signature(),
            created=current.created,
            last_edit=self._next_stamp(),
        )
        del self._items[item_id]  # to the end: the newest edit
        self._items[item_id] = edited
        self.generation += 1
        self._notify(Change(ChangeKind.UPDATE, edited))
        return edited

    def delete(self, item_id: str, signature: str | None) -> None:
        current = self.get(item_id)
        if signature is not None and not secrets.compare_digest(signature, current.signature):
            raise signature_mismatch(item_id, signature)
        del self._items[item_id]
        self.generation += 1
        self._notify(Change(ChangeKind.DELETE, current))

    def load(self, items: Iterable[Item]) -> None:
        """Replace every item (loading the state file). Listeners are not told: nothing changed."""
        ordered = sorted(items, key=lambda item: (item.last_edit, item.item_id))
        self._items = {item.item_id: item for item in ordered}
        self.generation += 1
        stamps = [item.last_edit for item in ordered]
        self.in_edit_order = all(earlier < later for earlier, later in itertools.pairwise(stamps))
        self._last_stamp = stamps[-1] if stamps else None

    def clear(self) -> None:
        self._items = {}
        self.in_edit_order = True
        self.generation += 1
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
