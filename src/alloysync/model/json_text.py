"""Compact JSON text, as alloysync keeps values in Redis (events' attributes and details, views).

`compact_json` writes the JSON that `json.dumps(value, separators=(",", ":"), default=str)` wrote,
with orjson (a tenth of the time for an event's attributes), and reads back the same values:

  - datetimes, dates, dataclasses, sets and anything else JSON has no type for go through `str`,
    as before; keys that are not strings become strings, as before;
  - non-ASCII characters are written as UTF-8, not as \\u escapes (the same JSON string);
  - NaN and the infinities become null (the standard library wrote `NaN`, which no JSON parser,
    Lua's cjson or orjson included, reads back);
  - what orjson refuses (an integer over 64 bits) is written by the standard library.

`json_bytes` writes what `json.dumps(value, separators=(",", ":"))` wrote, as bytes (request
bodies to Alloy, the emulator's answers): what the standard library refuses (a datetime, a
dataclass, a key that is not text) is refused, the same TypeError, and non-ASCII characters are
written as UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS  # no default: they raise


def compact_json(value: Any) -> str:
    """`value` as compact JSON text (see the module docstring)."""
    try:
        return orjson.dumps(value, default=str, option=_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value, separators=(",", ":"), default=str)


def json_bytes(value: Any) -> bytes:
    """`value` as compact JSON bytes, refusing what the standard library refuses (see above)."""
    try:
        return orjson.dumps(value, option=_STRICT)
    except TypeError:  # the standard library decides: an integer over 64 bits, or a TypeError again
        return json.dumps(value, separators=(",", ":")).encode()
