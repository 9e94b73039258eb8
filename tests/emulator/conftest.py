"""Fixtures for the emulator tests: one shared emulator subprocess, restored to defaults per test.

Starting a process costs about half a second, so tests that do not need a process of their own
share one; `restore_defaults` gives each test an empty emulator with default limits and no faults.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.emulator import EmulatorProcess


@pytest.fixture(scope="session")
def shared_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path_factory.mktemp("shared-emulator"))
    process.start()
    yield process
    process.stop()


@pytest.fixture
def emu(shared_emulator: EmulatorProcess) -> EmulatorProcess:
    """The shared emulator, empty, with Alloy's default rate limits and no faults."""
    shared_emulator.restore_defaults()
    return shared_emulator
