"""compact_json (model/json_text.py) writes the JSON values the standard library wrote."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from alloysync.model.events import Status
from alloysync.model.json_text import compact_json, json_bytes


@dataclasses.dataclass
class _Point:
    x: int


def stdlib(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


@pytest.mark.parametrize(
    "value",
    [
        {"status": Status.SUCCEEDED, "message": "Succeeded in 0.1 s", "result": None, "run_count": 3},
        {"values": [1, 2.5, -0.0, 1e16, True, None], "nested": {"a": [{}]}},
        {"at": datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "day": date(2026, 3, 29)},
        {"point": _Point(1), "set": {7}, "bytes": b"x"},
        {1: "int key", None: "none key"},
        {"big": 10**30},  # over 64 bits: orjson refuses, the standard library writes it
        ("a", "tuple"),
    ],
)
def test_the_same_text_as_the_standard_library(value: Any) -> None:
    assert compact_json(value) == stdlib(value)


def test_non_ascii_is_written_as_utf8_and_reads_back_the_same() -> None:
    value = {"message": "Échec — ü"}
    assert compact_json(value) == '{"message":"Échec — ü"}'
    assert orjson.loads(compact_json(value)) == json.loads(stdlib(value)) == value


def test_nan_becomes_null_which_reads_back() -> None:
    assert compact_json({"x": math.nan, "y": math.inf}) == '{"x":null,"y":null}'
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(stdlib({"x": math.nan}))  # what the standard library wrote could not be read


@pytest.mark.parametrize(
    "value",
    [
        {"attributes": [{"attributeCode": "a", "value": "Succeeded"}], "signature": "s", "n": [1, 2.5, None]},
        {1: "int key"},  # orjson refuses it, the standard library writes "1"
        {"big": 10**30},
    ],
)
def test_json_bytes_writes_what_the_standard_library_wrote(value: Any) -> None:
    assert json_bytes(value) == json.dumps(value, separators=(",", ":")).encode()


def test_json_bytes_refuses_what_the_standard_library_refuses() -> None:
    for value in ({"at": datetime(2026, 1, 1, tzinfo=UTC)}, {"point": _Point(1)}, {"set": {1}}):
        with pytest.raises(TypeError):
            json.dumps(value)
        with pytest.raises(TypeError):
            json_bytes(value)
