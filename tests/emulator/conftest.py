"""Fixtures for the emulator tests: shared emulator subprocesses, restored to defaults per test.

Starting a process costs about half a second, so tests that do not need a process of their own
share one; `restore_defaults` gives each test an emulator holding only the jobs design (seed
`none`), with default limits and no faults. `emu` sends items as real Alloy does (no item dates);
`emu_dated` is started with `--item-dates`.
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


@pytest.fixture(scope="session")
def shared_dated_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path_factory.mktemp("shared-dated-emulator"), item_dates=True)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def emu(shared_emulator: EmulatorProcess) -> EmulatorProcess:
    """The shared emulator: the jobs design and no items, Alloy's default rate limits, no faults."""
    shared_emulator.restore_defaults()
    return shared_emulator


@pytest.fixture
def emu_dated(shared_dated_emulator: EmulatorProcess) -> EmulatorProcess:
    """Like `emu`, but items carry lastEditDate and createdDate (`--item-dates`)."""
    shared_dated_emulator.restore_defaults()
    return shared_dated_emulator
