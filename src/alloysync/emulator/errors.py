"""Alloy's error values: `AlloyError` carries what becomes an error body.

The body has Alloy's shape `{category, errorCode, message, httpStatusCode, errorData}`. Every part
of the emulator that rejects a request raises an `AlloyError`; the gate in `app` turns it into the
HTTP response. This module has no HTTP dependencies so `store`, `aqs` and `designs` can use it.
"""

from __future__ import annotations

from typing import Any

_CATEGORY_BY_STATUS = {
    400: "Validation",
    401: "Authentication",
    403: "Authorisation",
    404: "NotFound",
    405: "Validation",
    409: "Conflict",
    413: "Validation",
    429: "RateLimit",
    500: "Internal",
    502: "Unavailable",
    503: "Unavailable",
}


class AlloyError(Exception):
    """A request Alloy would refuse, with the HTTP status and error code it would answer with."""

    def __init__(self, status: int, error_code: str, message: str, error_data: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.error_data = error_data

    @property
    def category(self) -> str:
        return _CATEGORY_BY_STATUS.get(self.status, "Internal" if self.status >= 500 else "Validation")

    def body(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "errorCode": self.error_code,
            "message": self.message,
            "httpStatusCode": self.status,
            "errorData": self.error_data,
        }


def bad_request(message: str, error_code: str = "ValidationError", error_data: Any = None) -> AlloyError:
    return AlloyError(400, error_code, message, error_data)


def item_not_found(item_id: str) -> AlloyError:
    return AlloyError(404, "ItemNotFound", f"no item with id {item_id!r}", {"itemId": item_id})


def signature_mismatch(item_id: str, sent: str) -> AlloyError:
    return AlloyError(
        409,
        "ItemSignatureMismatch",
        f"the signature {sent!r} is not the current signature of item {item_id}: "
        "the item was edited since it was read; read it again and retry",
        {"itemId": item_id},
    )


def unauthorized() -> AlloyError:
    return AlloyError(
        401,
        "Unauthorised",
        "missing or invalid API key: send the header 'Authorization: Bearer <api key>'",
    )
