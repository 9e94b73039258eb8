"""The systemd units in `deploy/systemd/`: they run exactly the Procfile's commands, keep secrets in an
EnvironmentFile, restart on failure as a dedicated user with hardening on, and `systemd-analyze verify`
finds nothing wrong with them (where systemd-analyze exists)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "deploy" / "systemd"
# Procfile process name -> the unit that runs it.
UNIT_OF_PROCESS = {
    "web": "alloysync-serve.service",
    "worker": "alloysync-worker.service",
    "scheduler": "alloysync-scheduler.service",
}
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "RestrictSUIDSGID": "yes",
}


def procfile_commands() -> dict[str, list[str]]:
    """`web: exec alloysync serve` -> {"web": ["alloysync", "serve"]}."""
    commands = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, command = line.split(":", 1)
        argv = shlex.split(command)
        if argv[0] == "exec":
            argv = argv[1:]
        commands[name.strip()] = argv
    return commands


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file by key (keys may repeat), across its sections."""
    settings: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_there_is_a_unit_for_every_procfile_process() -> None:
    assert set(procfile_commands()) == set(UNIT_OF_PROCESS)
    for unit in UNIT_OF_PROCESS.values():
        assert (UNITS / unit).is_file(), unit


@pytest.mark.parametrize(("process", "unit"), sorted(UNIT_OF_PROCESS.items()))
def test_each_unit_runs_its_procfile_command(process: str, unit: str) -> None:
    (exec_start,) = unit_settings(UNITS / unit)["ExecStart"]
    argv = shlex.split(exec_start)
    expected = procfile_commands()[process]
    assert Path(argv[0]).is_absolute(), "systemd needs an absolute path to the program"
    assert [Path(argv[0]).name, *argv[1:]] == expected


@pytest.mark.parametrize("unit", sorted(UNIT_OF_PROCESS.values()))
def test_each_unit_has_secrets_restart_user_and_hardening(unit: str) -> None:
    settings = unit_settings(UNITS / unit)
    assert settings["EnvironmentFile"] == ["/etc/alloysync/alloysync.env"]
    assert "Environment" not in settings, "secrets belong in the EnvironmentFile, not in the unit"
    assert settings["User"] == ["alloysync"] and settings["Group"] == ["alloysync"]
    assert settings["Restart"] == ["on-failure"] and settings["RestartSec"]
    assert settings["WantedBy"] == ["alloysync.target"] and settings["PartOf"] == ["alloysync.target"]
    for key, value in HARDENING.items():
        assert settings.get(key) == [value], key


def test_the_target_starts_all_three() -> None:
    (wants,) = unit_settings(UNITS / "alloysync.target")["Wants"]
    assert sorted(wants.split()) == sorted(UNIT_OF_PROCESS.values())


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (it comes with systemd)")
    # verify checks that ExecStart's program exists: point the copies at this checkout's alloysync.
    program = Path(sys.executable).with_name("alloysync")
    if not program.exists():
        pytest.skip(f"no alloysync entry point next to {sys.executable} (install the project with pip)")
    copies = []
    for unit in sorted(UNITS.iterdir()):
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/opt/alloysync/venv/bin/alloysync", str(program)))
        copies.append(str(copy))
    assert len(copies) == 4

    result = subprocess.run(
        [analyze, "verify", "--man=no", *copies], capture_output=True, text=True, timeout=60, check=False
    )

    # verify exits 0 even for unknown keys and bad values; it only warns. Any output is a finding.
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr
