"""`AlloyError` and the lenient error-body parser: known shapes, odd shapes, and arbitrary input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alloysync.alloy.errors import AlloyError, error_from_response, network_error
from tests.alloy.strategies import json_values

NEW_SHAPE = {
    "category": "ItemSignatureMismatch",
    "errorCode": "ItemSignatureMismatch",
    "message": "the item was edited since it was read",
    "httpStatusCode": 409,
    "errorData": {"itemId": "abc"},
}
OLD_SHAPE = {
    "errorCode": 1234,
    "errorCodeString": "ItemSignatureMismatch",
    "debugErrorMessage": "Signature mismatch for item abc",
    "errorData": None,
}
HTML_502 = b"""<html>
<head><title>502 Bad Gateway</title></head>
<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body>
</html>"""


def _json(document: Any) -> bytes:
    return json.dumps(document).encode()


def test_new_shape() -> None:
    error = error_from_response(409, _json(NEW_SHAPE), "application/json; charset=utf-8")

    assert error.status == 409
    assert error.category == "ItemSignatureMismatch"
    assert error.code == "ItemSignatureMismatch"
    assert error.error_data == {"itemId": "abc"}
    assert "the item was edited since it was read" in error.message
    assert error.is_signature_mismatch and not error.is_retryable


def test_old_shape_prefers_the_code_string() -> None:
    error = error_from_response(400, _json(OLD_SHAPE), "application/json")

    assert error.code == "ItemSignatureMismatch"
    assert error.is_signature_mismatch  # the code counts at any status, not only 409
    assert "Signature mismatch for item abc" in error.message


def test_409_without_a_code_is_a_signature_mismatch() -> None:
    assert error_from_response(409, b"", None).is_signature_mismatch


def test_html_502_page() -> None:
    error = error_from_response(502, HTML_502, "text/html")

    assert error.status == 502 and error.code == ""
    assert error.is_retryable
    assert "502 Bad Gateway" in error.message
    assert "<" not in error.message  # tags stripped
    assert "text/html" in error.message


def test_unauthorized_says_which_setting_to_check() -> None:
    body = _json({"category": "Authentication", "errorCode": "Unauthorised", "message": "invalid API key"})
    error = error_from_response(401, body, "application/json")

    assert error.is_unauthorized and not error.is_retryable
    assert "token" in error.message and "ALLOYSYNC_ALLOY_TOKEN" in error.message


def test_secrets_are_scrubbed() -> None:
    body = _json({"message": "bad key Bearer s3cr3t-token", "errorData": {"echo": ["s3cr3t-token"]}})
    error = error_from_response(401, body, "application/json", secrets=["s3cr3t-token", ""])

    assert "s3cr3t-token" not in error.message
    assert "s3cr3t-token" not in json.dumps(error.error_data)
    assert "s3cr3t-token" not in str(error) + repr(error)


@pytest.mark.parametrize(
    ("status", "body", "content_type", "check"),
    [
        (500, b"", None, "internal error"),
        (503, b"   ", "text/plain", "unavailable"),
        (400, b"[]", "application/json", "JSON list"),
        (400, _json([{"errorCode": "Bad", "message": "listed"}]), "application/json", "listed"),
        (400, _json("just a string"), "application/json", "just a string"),
        (400, b"12", "application/json", "unexpected JSON"),
        (400, b"null", "application/json", "rejected the request"),
        (404, _json({"error": {"code": "ItemNotFound", "message": "nested"}}), None, "nested"),
        (400, _json({"unrelated": True}), "application/json", "unrelated"),
        (400, b"{not json", "application/json", "non-JSON"),
        (418, b"\xff\xfe\x00garbage", None, "non-JSON"),
        (429, _json({"errorCode": "RateLimitExceeded"}), "application/json", "rate limit"),
        (400, b"x" * 5000, "text/plain", "\u2026"),
        (301, b"", "text/html", "ALLOYSYNC_ALLOY_URL"),
    ],
)
def test_odd_shapes(status: int, body: bytes, content_type: str | None, check: str) -> None:
    error = error_from_response(status, body, content_type, request="GET /api/item/x")

    assert error.status == status
    assert check.lower() in error.message.lower()
    assert len(error.message) < 400
    assert str(error).endswith("[GET /api/item/x]")


def test_classification() -> None:
    assert error_from_response(404, _json({"errorCode": "ItemNotFound"}), None).is_not_found
    assert error_from_response(400, _json({"errorCode": "ItemNotFound"}), None).is_not_found
    assert error_from_response(429, b"", None).is_retryable
    assert error_from_response(429, b"", None).is_rate_limited
    assert error_from_response(504, b"", None).is_retryable
    assert not error_from_response(400, b"", None).is_retryable
    assert not error_from_response(403, b"", None).is_unauthorized


def test_network_errors() -> None:
    refused = network_error("http://127.0.0.1:9", "Connection refused", request="GET /api/item/x")
    assert refused.status is None and refused.is_retryable
    assert "http://127.0.0.1:9" in refused.message and "ALLOYSYNC_ALLOY_URL" in refused.message

    timeout = network_error("http://alloy.example", "timeout", timeout=2.5)
    assert timeout.is_retryable and timeout.code == "Timeout"
    assert "2.5 s" in timeout.message


@given(st.integers(min_value=100, max_value=599), st.binary(max_size=300), st.none() | st.text(max_size=40))
def test_arbitrary_bytes_never_crash(status: int, body: bytes, content_type: str | None) -> None:
    error = error_from_response(status, body, content_type)
    assert isinstance(error, AlloyError)
    assert error.message and error.status == status


@given(st.integers(min_value=400, max_value=599), json_values)
def test_arbitrary_json_never_crashes(status: int, document: Any) -> None:
    error = error_from_response(status, _json(document), "application/json")
    assert isinstance(error.message, str) and error.message
    assert isinstance(error.code, str) and isinstance(error.category, str)


error_objects = st.fixed_dictionaries(
    {},
    optional={
        "category": json_values,
        "errorCode": json_values,
        "errorCodeString": json_values,
        "message": json_values,
        "debugErrorMessage": json_values,
        "httpStatusCode": json_values,
        "errorData": json_values,
        "error": json_values,
    },
)


@given(st.integers(min_value=400, max_value=599), error_objects)
def test_error_like_objects_never_crash(status: int, document: dict[str, Any]) -> None:
    error = error_from_response(status, _json(document), "application/json")
    assert error.message
    code_string = document.get("errorCodeString")
    if (
        isinstance(code_string, str)
        and code_string.strip()
        and not isinstance(document.get("errorCode"), str)
    ):
        assert error.code == code_string.strip()


# --- classification by Alloy's category ----------------------------------------------------

# Statuses a category may come with: Alloy does not document the status of every reason.
ANY_STATUS = [400, 403, 404, 409, 412, 422, 500, 503]


def _category_only(status: int, category: str) -> AlloyError:
    """An error whose body names only the category: no errorCode, no message."""
    return error_from_response(status, _json({"category": category}), "application/json")


@pytest.mark.parametrize("status", ANY_STATUS)
def test_a_stale_signature_is_known_by_its_category_alone(status: int) -> None:
    error = _category_only(status, "ItemSignatureMismatch")
    assert error.is_signature_mismatch
    assert not error.is_retryable  # the same request would fail the same way: re-read instead
    assert "edited by someone else" in error.message


@pytest.mark.parametrize("status", ANY_STATUS)
def test_not_found_rate_limited_and_unauthorized_by_category_alone(status: int) -> None:
    for category in ("ItemNotFound", "DesignNotFound"):
        assert _category_only(status, category).is_not_found, category
    limited = _category_only(status, "RateLimited")
    assert limited.is_rate_limited and limited.is_retryable
    assert "rate limit" in limited.message
    unauthorized = _category_only(status, "UserUnauthorized")
    assert unauthorized.is_unauthorized and not unauthorized.is_retryable
    assert "ALLOYSYNC_ALLOY_TOKEN" in unauthorized.message


@pytest.mark.parametrize("status", [400, 404, 409, 500])
def test_categories_say_what_statuses_cannot(status: int) -> None:
    """A category that names another reason is not mistaken for the one its status suggests."""
    for category in ("BadRequest", "DodiAttributeNotFound", "DodiAttributeLinkItemNotFound"):
        error = _category_only(status, category)
        assert not error.is_not_found and not error.is_signature_mismatch, (category, status)
        assert not error.is_rate_limited and not error.is_unauthorized
        assert not error.is_retryable
    design_stale = _category_only(status, "DesignSignatureMismatch")
    assert design_stale.is_design_signature_mismatch and not design_stale.is_signature_mismatch


@pytest.mark.parametrize("category", ["SystemUnderMaintenance", "InternalError", "RequestTimeout"])
@pytest.mark.parametrize("status", [400, 500, 503])
def test_transient_categories_are_retryable_at_any_status(category: str, status: int) -> None:
    error = _category_only(status, category)
    assert error.is_retryable
    assert not (error.is_signature_mismatch or error.is_not_found or error.is_unauthorized)


def test_forbidden_categories_name_the_users_role() -> None:
    for status, category in ((403, "DesignCreateForbidden"), (400, "ItemEditForbidden"), (403, "")):
        error = error_from_response(status, _json({"category": category, "message": "no"}), None)
        assert error.is_forbidden and not error.is_unauthorized and not error.is_retryable
        assert "role" in error.message and "user" in error.message


def test_the_statuses_still_count_without_a_category() -> None:
    assert error_from_response(409, b"{}", None).is_signature_mismatch
    assert error_from_response(404, b"", None).is_not_found
    assert error_from_response(429, b"", None).is_rate_limited
    assert error_from_response(401, b"", None).is_unauthorized
    assert error_from_response(502, b"", None).is_retryable


def test_the_error_code_alone_counts_as_the_category_does() -> None:
    """Older bodies carry the reason as the error code, under errorCode or errorCodeString."""
    assert error_from_response(500, _json({"errorCode": "ItemSignatureMismatch"}), None).is_signature_mismatch
    old = {"errorCode": 7, "errorCodeString": "ItemNotFound", "debugErrorMessage": "gone"}
    error = error_from_response(400, _json(old), None)
    assert error.is_not_found and "gone" in error.message
    assert error_from_response(400, _json({"errorCodeString": "RateLimited"}), None).is_rate_limited


def test_messages_name_the_category_and_the_code() -> None:
    body = {"category": "BadRequest", "errorCode": "AttributeTypeMismatch", "message": "Status: not a string"}
    error = error_from_response(400, _json(body), "application/json")
    assert "HTTP 400 BadRequest/AttributeTypeMismatch" in error.message
    assert "rejected the request as invalid" in error.message and "Status: not a string" in error.message
    same = error_from_response(409, _json(NEW_SHAPE), None)
    assert "(HTTP 409 ItemSignatureMismatch)" in same.message  # named once when both say the same
    maintenance = _category_only(503, "SystemUnderMaintenance")
    assert "maintenance" in maintenance.message


@pytest.mark.parametrize(
    "document",
    [
        {"category": 12, "errorCode": None},
        {"category": ["ItemNotFound"], "message": {"nested": True}},
        {"category": "", "errorCode": "", "message": ""},
        {"category": "SomethingAlloyAddsNext", "httpStatusCode": "teapot"},
    ],
)
def test_unknown_category_shapes_never_crash(document: dict[str, Any]) -> None:
    error = error_from_response(418, _json(document), "application/json")
    assert error.message and error.status == 418
    assert not (error.is_signature_mismatch or error.is_not_found or error.is_retryable)
