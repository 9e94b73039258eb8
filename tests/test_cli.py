"""The `alloysync` command line, run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from alloysync.local.redis_server import RedisServer, free_port
from tests.support.emulator import EmulatorProcess

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("serve", "worker", "scheduler", "emulator", "demo", "check", "tasks", "setup")


def alloysync(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ALLOYSYNC_")}
    return subprocess.run(
        [sys.executable, "-m", "alloysync", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**clean, "PYTHONPATH": str(REPO), **env},
        cwd=REPO,
        check=False,
    )


def test_help_lists_every_command() -> None:
    result = alloysync("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command: str) -> None:
    result = alloysync(command, "--help")
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) >= 4, result.stdout


def test_bad_settings_get_one_line_each_and_no_echo() -> None:
    result = alloysync("check", ALLOYSYNC_POLL_INTERVAL="-1", ALLOYSYNC_ALLOY_URL="ftp://secret-host-7f3a")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("alloysync: ALLOYSYNC_ALLOY_URL: ") or lines[1].startswith(
        "alloysync: ALLOYSYNC_ALLOY_URL"
    )
    assert any("ALLOYSYNC_POLL_INTERVAL" in line and "greater than 0" in line for line in lines)


def test_check_against_a_stopped_emulator_says_so_in_one_line(redis_server: RedisServer) -> None:
    port = free_port()  # nothing listens here
    result = alloysync(
        "check",
        ALLOYSYNC_ALLOY_URL=f"http://127.0.0.1:{port}",
        ALLOYSYNC_ALLOY_TOKEN="tok-31415",
        ALLOYSYNC_REDIS_URL=redis_server.url,
        timeout=30,
    )
    assert result.returncode == 1
    problems = result.stderr.strip().splitlines()
    assert len(problems) == 1, problems
    assert problems[0].startswith("problem  alloy:") and f"127.0.0.1:{port}" in problems[0]
    assert "ALLOYSYNC_ALLOY_URL" in problems[0]
    assert "tok-31415" not in result.stdout + result.stderr
    assert "ok       redis:" in result.stdout


def test_check_passes_against_a_running_system(redis_server: RedisServer, emulator: EmulatorProcess) -> None:
    result = alloysync(
        "check",
        ALLOYSYNC_ALLOY_URL=emulator.url,
        ALLOYSYNC_ALLOY_TOKEN=emulator.token,
        ALLOYSYNC_REDIS_URL=redis_server.url,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "ok       alloy:" in result.stdout and "ok       redis:" in result.stdout


def test_check_reports_a_wrong_token_and_redis_down(emulator: EmulatorProcess) -> None:
    result = alloysync(
        "check",
        ALLOYSYNC_ALLOY_URL=emulator.url,
        ALLOYSYNC_ALLOY_TOKEN="not-the-token",
        ALLOYSYNC_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    assert result.returncode == 1
    problems = result.stderr.strip().splitlines()
    assert len(problems) == 2, problems
    assert "ALLOYSYNC_ALLOY_TOKEN" in problems[0] and "not-the-token" not in result.stderr
    assert problems[1].startswith("problem  redis: cannot reach Redis")


def test_emulator_needs_a_token() -> None:
    result = alloysync("emulator", "--port", str(free_port()), timeout=20)
    assert result.returncode == 2
    assert "ALLOYSYNC_ALLOY_TOKEN" in (result.stdout + result.stderr)


def test_worker_refuses_unknown_queues_and_modules(redis_server: RedisServer) -> None:
    result = alloysync("worker", "--queues", "nope", ALLOYSYNC_REDIS_URL=redis_server.url)
    assert result.returncode == 2 and "no task uses queue(s) nope" in result.stderr
    result = alloysync(
        "worker", ALLOYSYNC_REDIS_URL=redis_server.url, ALLOYSYNC_TASK_MODULES="no.such.module"
    )
    assert result.returncode == 2 and "cannot import task module 'no.such.module'" in result.stderr
