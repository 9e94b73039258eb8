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
    "category": "Conflict",
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
    assert error.category == "Conflict"
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
