"""The `--state FILE`: loading designs and items at start, and saving them after changes without
slowing requests.

Format version 2 holds `designs` and `items`; a version 1 file (items only, written before the
emulator had designs) still loads: its items come back, and the designs are the seed's.

Saving is coalesced: a change marks the state dirty and schedules one save a short moment later, so
a burst of a thousand creates costs a few file writes, not a thousand. The file is written on a
worker thread (never blocking the event loop) to a temporary file in the same folder, fsynced, and
renamed over the old one, so a crash leaves either the old or the new state, never half a file.
`flush()` saves at once; it runs on clean shutdown.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alloysync.emulator.clock import format_timestamp, utc_now
from alloysync.emulator.designs import Design
from alloysync.emulator.store import Item
from alloysync.log import get_logger

FORMAT_NAME = "alloysync-emulator-state"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
DEFAULT_SAVE_DELAY = 0.2

log = get_logger(__name__)


class StateFileError(Exception):
    """The state file exists but cannot be read as emulator state."""


@dataclass(frozen=True)
class SavedState:
    designs: list[Design] | None  # None: a version 1 file, which has no designs
    items: list[Item]


def load_state(path: Path) -> SavedState | None:
    """The designs and items saved in `path`, or None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StateFileError(f"cannot read the state file {path}: {error.strerror}") from error
    try:
        document = json.loads(text)
    except ValueError as error:
        raise StateFileError(f"the state file {path} is not valid JSON: {error}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise StateFileError(f'{path} is not an emulator state file (no "format": "{FORMAT_NAME}")')
    version = document.get("version")
    if version not in READABLE_VERSIONS:
        raise StateFileError(f"{path} has state format version {version!r}, expected 1 or 2")
    raw_items = document.get("items")
    raw_designs = document.get("designs") if version == FORMAT_VERSION else None
    if not isinstance(raw_items, list) or (version == FORMAT_VERSION and not isinstance(raw_designs, list)):
        raise StateFileError(f'{path}: "items" and "designs" must be lists')
    try:
        designs = None if raw_designs is None else [Design.from_state(raw) for raw in raw_designs]
        return SavedState(designs=designs, items=[Item.from_state(raw) for raw in raw_items])
    except ValueError as error:
        raise StateFileError(f"{path}: {error}") from error


def write_state(path: Path, designs: list[Design], items: list[Item]) -> None:
    """Write designs and items atomically (temporary file, fsync, rename). Blocking: call it on a thread."""
    document: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "savedAt": format_timestamp(utc_now()),
        "designs": [design.to_state() for design in designs],
        "items": [item.to_state() for item in items],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(document, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


Snapshot = Callable[[], tuple[list[Design], list[Item]]]


class StateSaver:
    """Saves a snapshot of the designs and items to the state file shortly after each change."""

    def __init__(self, path: Path, snapshot: Snapshot, delay: float = DEFAULT_SAVE_DELAY) -> None:
        self.path = path
        self._snapshot = snapshot
        self._delay = delay
        self._dirty = False
        self._lock = asyncio.Lock()
        self._pending: asyncio.Task[None] | None = None

    def mark_dirty(self) -> None:
        """Note a change; a save follows within the delay. Call it on the event loop."""
        self._dirty = True
        if self._pending is None or self._pending.done():
            self._pending = asyncio.get_running_loop().create_task(self._save_soon())

    async def flush(self) -> bool:
        """Save now if anything changed since the last save; False when the write failed."""
        return await self._save_once()

    async def close(self) -> None:
        """Save what is unsaved and stop the pending save."""
        if self._pending is not None:
            self._pending.cancel()
            await asyncio.gather(self._pending, return_exceptions=True)
        await self.flush()

    async def _save_soon(self) -> None:
        while self._dirty:
            await asyncio.sleep(self._delay)
            if not await self._save_once():
                return  # logged; the next change or the shutdown flush tries again

    async def _save_once(self) -> bool:
        async with self._lock:
            if not self._dirty:
                return True
            self._dirty = False
            designs, items = self._snapshot()
            write = asyncio.ensure_future(asyncio.to_thread(write_state, self.path, designs, items))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                # Let the write finish (still holding the lock) so no later save races it on the file.
                await asyncio.wait([write])
                if write.exception() is not None:
                    self._dirty = True
                raise
            except (OSError, TypeError, ValueError) as error:
                self._dirty = True
                log.error("cannot save the state", path=str(self.path), error=str(error))
                return False
            log.debug("state saved", path=str(self.path), designs=len(designs), items=len(items))
            return True
