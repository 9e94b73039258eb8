"""JSON over HTTP: reading request bodies strictly, query parameters, JSON and Alloy error responses."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from aiohttp import web

from alloysync.emulator.checks import describe_json
from alloysync.emulator.errors import AlloyError, Category, bad_request
from alloysync.model.json_text import json_bytes

JSON_CONTENT_TYPE = "application/json"


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    """The request's JSON body; 400 when it is not JSON (or is empty though `required`)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.client_max_size
        raise AlloyError(
            413, Category.BAD_REQUEST, f"the request body is larger than {limit} bytes"
        ) from None
    if not raw.strip():
        if required:
            raise bad_request("the request needs a JSON body")
        return None
    try:
        return orjson.loads(raw)  # strict: NaN and Infinity are not JSON
    except ValueError as error:  # orjson.JSONDecodeError is one
        raise bad_request(f"the request body is not valid JSON: {error}") from None


async def read_json_object(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON body, which must be an object (an absent optional body reads as {})."""
    body = await read_json(request, required=required)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise bad_request(f"the request body must be a JSON object, got {describe_json(body)}")
    return body


def encode_json(payload: Any) -> bytes:
    """`payload` as the emulator writes JSON: compact, non-ASCII characters escaped. orjson writes
    it (a fifth of the time) unless the text has non-ASCII characters, which orjson cannot escape."""
    encoded = json_bytes(payload)
    if encoded.isascii():
        return encoded
    return json.dumps(payload, separators=(",", ":")).encode()


def encoded_array(elements: Iterable[bytes]) -> bytes:
    """A JSON array of elements that are already encoded (`encode_json`)."""
    return b"[" + b",".join(elements) + b"]"


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return encoded_response(encode_json(payload), status, headers)


def json_response_with(head: Mapping[str, Any], key: str, encoded: bytes) -> web.Response:
    """`json_response({**head, key: value})` where `value` comes already encoded (`encode_json`):
    the same bytes, without encoding the value again."""
    opening = encode_json(dict(head))[:-1] + (b"," if head else b"")
    return encoded_response(opening + encode_json(key) + b":" + encoded + b"}")


def encoded_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A response whose body is JSON already encoded (`encode_json`)."""
    return web.Response(body=body, status=status, content_type=JSON_CONTENT_TYPE, headers=headers)


def error_response(error: AlloyError, headers: Mapping[str, str] | None = None) -> web.Response:
    return json_response(error.body(), status=error.status, headers=headers)


def query_int(request: web.Request, name: str, *, default: int, maximum: int | None) -> int:
    """A whole-number query parameter, its name matched without case (`page`, `Page`); 400 when bad."""
    raw = query_text(request, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise bad_request(f"{name} must be 1 or more, got {value}")
    if maximum is not None and value > maximum:
        raise bad_request(f"{name} must be at most {maximum}, got {value}")
    return value


def query_text(request: web.Request, name: str) -> str | None:
    """A query parameter, its name matched without case (ASP.NET binds them so); None when absent."""
    wanted = name.lower()
    return next((value for key, value in request.query.items() if key.lower() == wanted), None)


DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def query_page(request: web.Request) -> tuple[int, int]:
    """`page` (from 1) and `pageSize` (default 20, at most 100) of a listing request; 400 when bad."""
    page = query_int(request, "page", default=1, maximum=None)
    return page, query_int(request, "pageSize", default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
