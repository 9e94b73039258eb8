"""The emulator process: the start line, and a clean exit on SIGTERM."""

from __future__ import annotations

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
