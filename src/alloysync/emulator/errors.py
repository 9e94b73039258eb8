"""Alloy's error values: `AlloyError` carries what becomes an error body.

The body has Alloy's shape `{category, errorCode, message, httpStatusCode, errorData}`
(`AlloyExceptionWebModel`). `category` is always one of Alloy's published `ErrorCodeCategory`
values (the TypeScript client generated from Alloy's OpenAPI lists them); `Category` holds the ones
the emulator sends. Real Alloy's `errorCode` vocabulary is not published, so the emulator sends the
category there too unless told otherwise (the fault knob `signature_mismatch_error_code`).

Every part of the emulator that rejects a request raises an `AlloyError`; the gate in `app` turns it
into the HTTP response. This module has no HTTP dependencies so every other module can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Category(StrEnum):
    """The `ErrorCodeCategory` values the emulator sends (each is one of Alloy's published values)."""

    BAD_REQUEST = "BadRequest"
    INTERNAL_ERROR = "InternalError"
    SYSTEM_UNDER_MAINTENANCE = "SystemUnderMaintenance"
    RATE_LIMITED = "RateLimited"
    USER_UNAUTHORIZED = "UserUnauthorized"
    ITEM_NOT_FOUND = "ItemNotFound"
    ITEM_SIGNATURE_MISMATCH = "ItemSignatureMismatch"
    ITEM_GEOMETRY_CONSTRAINT_VIOLATED = "ItemGeometryConstraintViolated"
    ITEM_COLLECTION_CONSTRAINT_VIOLATED = "ItemCollectionConstraintViolated"
    AQS_INVALID_QUERY = "AqsInvalidQuery"
    DODI_NOT_FOUND = "DodiNotFound"
    DESIGN_NOT_FOUND = "DesignNotFound"
    DESIGN_SIGNATURE_MISMATCH = "DesignSignatureMismatch"
    DODI_ATTRIBUTE_NOT_IN_DESIGN = "DodiAttributeNotInDesign"
    DODI_ATTRIBUTE_TYPE_VIOLATED = "DodiAttributeTypeViolated"
    DODI_ATTRIBUTE_OPTION_CONSTRAINT_VIOLATED = "DodiAttributeOptionConstraintViolated"
    DODI_ATTRIBUTE_REQUIRED_VIOLATED = "DodiAttributeRequiredViolated"
    DODI_ATTRIBUTE_READONLY_VIOLATED = "DodiAttributeReadonlyViolated"
    DODI_ATTRIBUTE_UNIQUE_VIOLATED = "DodiAttributeUniqueViolated"
    DODI_ATTRIBUTE_LINK_ITEM_NOT_FOUND = "DodiAttributeLinkItemNotFound"
    DODI_ATTRIBUTE_OPTIONS_MALFORMED = "DodiAttributeOptionsMalformed"
    DODI_ATTRIBUTE_OPTION_INVALID = "DodiAttributeOptionInvalid"


SIGNATURE_MISMATCHES = frozenset({Category.ITEM_SIGNATURE_MISMATCH, Category.DESIGN_SIGNATURE_MISMATCH})
SIGNATURE_MISMATCH_STATUS = 409  # Alloy does not document it; the fault knob changes it


@dataclass(eq=False, repr=False)
class AlloyError(Exception):
    """A request Alloy would refuse: the HTTP status, the category and a message saying what to fix.

    `error_code` is the body's `errorCode`; None (the default) sends the category there.
    """

    status: int
    category: Category
    message: str
    error_data: Any = None
    error_code: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)
        if self.error_code is None:
            self.error_code = str(self.category)

    def answered_with(self, status: int, error_code: str | None = None) -> AlloyError:
        """The same error with another HTTP status (and, when given, another errorCode)."""
        code = self.error_code if error_code is None else error_code
        return AlloyError(status, self.category, self.message, self.error_data, code)

    def body(self) -> dict[str, Any]:
        return {
            "category": str(self.category),
            "errorCode": self.error_code,
            "message": self.message,
            "httpStatusCode": self.status,
            "errorData": self.error_data,
        }


def bad_request(
    message: str, category: Category = Category.BAD_REQUEST, error_data: Any = None
) -> AlloyError:
    return AlloyError(400, category, message, error_data)


def item_not_found(item_id: str) -> AlloyError:
    return AlloyError(404, Category.ITEM_NOT_FOUND, f"no item with id {item_id!r}", {"itemId": item_id})


def signature_mismatch(item_id: str, sent: str) -> AlloyError:
    stale = _stale_signature("item", item_id, sent, "was edited since it was read; read it again")
    return AlloyError(SIGNATURE_MISMATCH_STATUS, Category.ITEM_SIGNATURE_MISMATCH, stale, {"itemId": item_id})


def design_not_found(design_code: str, status: int = 404) -> AlloyError:
    return AlloyError(
        status,
        Category.DESIGN_NOT_FOUND,
        f"there is no design {design_code!r} (GET /api/design/{{code}} reads a design; "
        "POST /api/design creates one)",
        {"designCode": design_code},
    )


def design_signature_mismatch(design_code: str, sent: str) -> AlloyError:
    how = "was changed since it was read; read it again (GET /api/design/{code})"
    stale = _stale_signature("design", design_code, sent, how)
    return AlloyError(
        SIGNATURE_MISMATCH_STATUS, Category.DESIGN_SIGNATURE_MISMATCH, stale, {"designCode": design_code}
    )


def _stale_signature(what: str, name: str, sent: str, how: str) -> str:
    """The message of a stale signature: which one was sent, and what to do about it."""
    return f"the signature {sent!r} is not the current signature of {what} {name}: the {what} {how} and retry"


def unauthorized() -> AlloyError:
    return AlloyError(
        401,
        Category.USER_UNAUTHORIZED,
        "missing or invalid API key: send the header 'Authorization: Bearer <api key>'",
    )


def internal_error(message: str) -> AlloyError:
    return AlloyError(500, Category.INTERNAL_ERROR, message)
