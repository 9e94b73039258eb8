"""What a run's result becomes on the job record: a one-line summary for Message, and the result
itself for Result, bounded in size."""

from __future__ import annotations

import json
from typing import Any

PREVIEW_MARGIN = 120  # bytes kept free in a truncated result for its marker fields


def summarize_result(result: Any, max_chars: int) -> str:
    """A one-line summary of a task result for the Message attribute."""
    if isinstance(result, dict):
        for key in ("summary", "subject", "message", "status"):
            if isinstance(result.get(key), str) and result[key].strip():
                return truncate(result[key].strip().splitlines()[0], max_chars)
    if isinstance(result, str) and result.strip():
        return truncate(result.strip().splitlines()[0], max_chars)
    if result is None:
        return "no result"
    return truncate(json.dumps(result, separators=(",", ":"), default=str), max_chars)


def bounded_result(result: Any, max_bytes: int) -> Any:
    """The result itself if its JSON fits `max_bytes`, else a marked, truncated preview."""
    text = json.dumps(result, separators=(",", ":"), default=str)
    size = len(text.encode())
    if size <= max_bytes:
        return result
    return {"truncated": True, "bytes": size, "preview": text[: max(0, max_bytes - PREVIEW_MARGIN)]}


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
