"""Alloy's response bodies and request values: parsing what the API answers into models, leniently,
and turning Python values into what the API accepts. Pure functions, used by `client.py`.

A 2xx body that is not what the endpoint returns raises `UnexpectedResponse` (the client turns it
into an `AlloyError`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from alloysync.alloy.designs import AttributeAdded, Design
from alloysync.alloy.models import Item
from alloysync.model.times import format_alloy_datetime

__all__ = [
    "DesignPage",
    "RawPage",
    "UnexpectedResponse",
    "decode_json",
    "ignore",
    "parse_attribute_added",
    "parse_design_page",
    "parse_http_date",
    "parse_page",
    "parse_wrapped_design",
    "parse_wrapped_item",
    "wire_attributes",
]


class UnexpectedResponse(Exception):
    """A 2xx response whose body is not what the endpoint returns; `_attempt` turns it into an AlloyError."""


@dataclass(frozen=True)
class DesignPage:
    designs: list[Design]
    total_pages: int | None


@dataclass(frozen=True)
class RawPage:
    items: list[Item]
    size: int  # the number of results the server returned (before removing repeats)
    page_size: int  # the page size the server says it used
    known: list[str] = field(default_factory=list)  # ids of results the caller already had (not parsed)


KnownView = Callable[[str, str], bool]  # (item id, signature) -> whether the caller has that view


def decode_json(raw: bytes, content_type: str) -> Any:
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except ValueError:  # orjson.JSONDecodeError is one
        snippet = raw[:200].decode("utf-8", errors="replace")
        raise UnexpectedResponse(
            f"a body that is not JSON ({content_type or 'no content type'}): {snippet!r}"
        ) from None


def ignore(_payload: Any) -> None:
    return None


def parse_page(requested: int, known_view: KnownView | None = None) -> Callable[[Any], RawPage]:
    """A query answer's parser. With `known_view`, a result whose (itemId, signature) the caller
    already has is not validated into an `Item`, only listed by id in `RawPage.known`: parsing is
    most of the cost of re-reading a page of items that did not change."""

    def parse(payload: Any) -> RawPage:
        if not isinstance(payload, dict):
            raise UnexpectedResponse("a query answer that is not an object with results")
        results = payload.get("results")
        if results is None:
            results = []
        if not isinstance(results, list):
            raise UnexpectedResponse("a query answer whose results are not a list")
        items, known = [], []
        for raw in results:
            if known_view is not None and _is_known(raw, known_view):
                known.append(raw["itemId"])
            else:
                items.append(parse_item(raw))
        return RawPage(items, len(results), page_size(payload, requested), known)

    return parse


def _is_known(raw: Any, known_view: KnownView) -> bool:
    if not isinstance(raw, dict):
        return False
    item_id, signature = raw.get("itemId"), raw.get("signature")
    return isinstance(item_id, str) and isinstance(signature, str) and known_view(item_id, signature)


def page_size(payload: dict[str, Any], requested: int) -> int:
    """The page size the server says it used (it may cap ours), else the one we asked for."""
    echoed = payload.get("pageSize")
    if isinstance(echoed, int) and not isinstance(echoed, bool) and echoed > 0:
        return echoed
    return requested


def parse_wrapped_item(payload: Any) -> Item:
    """Single items come as `{"item": {...}}`; a bare item is accepted too."""
    if isinstance(payload, dict) and isinstance(payload.get("item"), dict):
        payload = payload["item"]
    return parse_item(payload)


def parse_wrapped_design(payload: Any) -> Design:
    """A design comes as `{"design": {...}, "operationsSummary": {...}}`; a bare design is accepted too."""
    if isinstance(payload, dict) and isinstance(payload.get("design"), dict):
        payload = payload["design"]
    return validated(Design, payload, "a design")


def parse_attribute_added(payload: Any) -> AttributeAdded:
    """`{"attributeCode", "designWithOperationsSummary": {"design": {...}}}`."""
    if not isinstance(payload, dict) or not isinstance(payload.get("attributeCode"), str):
        raise UnexpectedResponse("an answer to adding an attribute without its attributeCode")
    wrapped = payload.get("designWithOperationsSummary", payload.get("design"))
    design = parse_wrapped_design(wrapped) if isinstance(wrapped, dict) else None
    return AttributeAdded(attribute_code=payload["attributeCode"], design=design)


def parse_design_page(payload: Any) -> DesignPage:
    if not isinstance(payload, dict) or not isinstance(payload.get("results", []), list):
        raise UnexpectedResponse("a design list that is not an object with results")
    designs = [parse_wrapped_design(raw) for raw in payload.get("results") or []]
    total = payload.get("totalPages")
    total_pages = total if isinstance(total, int) and not isinstance(total, bool) else None
    return DesignPage(designs, total_pages)


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], raw: Any, what: str) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
            for problem in exc.errors()[:3]
        )
        raise UnexpectedResponse(f"something that is not {what} ({problems})") from None


@functools.lru_cache(maxsize=4)  # the header changes once a second: most answers repeat it
def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP `Date` header (`Tue, 02 Jul 2024 10:00:00 GMT`) as an aware UTC datetime, or None."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # `-0000`: UTC by RFC 5322
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_item(raw: Any) -> Item:
    return validated(Item, raw, "an item")


def wire_attributes(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"attributeCode": code, "value": wire_value(value)} for code, value in attributes.items()]


def wire_value(value: Any) -> Any:
    """Python values Alloy has a text form for: datetimes as Alloy DateTime, dates as `YYYY-MM-DD`."""
    if isinstance(value, datetime):
        return format_alloy_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value
