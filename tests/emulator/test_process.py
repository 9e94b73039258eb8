"""The emulator process: the start line, a clean exit on SIGTERM, and its --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.emulator import EmulatorProcess


def test_prints_where_it_listens_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    process = EmulatorProcess(tmp_path)
    process.start()
    child = process.process
    assert child is not None
    child.terminate()
    assert child.wait(10) == 0
    process.process = None
    start_lines = [
        line for line in process.read_log().splitlines() if line.startswith("alloysync emulator listening")
    ]
    assert len(start_lines) == 1
    assert f"http://127.0.0.1:{process.port}" in start_lines[0]


def test_help_names_the_seeds_and_item_dates() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "alloysync", "emulator", "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for fragment in ("demo,none,empty", "--item-dates", "new tenant", "/api/design", "--state FILE"):
        assert fragment in text, fragment


def test_the_start_line_says_whether_items_carry_dates(tmp_path: Path) -> None:
    process = EmulatorProcess(tmp_path, item_dates=True, seed="empty")
    process.start()
    process.stop()
    assert "seed: empty" in process.read_log() and "item dates: on" in process.read_log()
