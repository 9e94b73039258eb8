"""`alloysync demo --once`, the README's first command, on embedded defaults in an empty folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alloysync.local.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]


def test_demo_once_runs_the_one_off_jobs_and_leaves_nothing_behind(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOYSYNC_")}
    env |= {
        # free ports, in case something on this machine uses the defaults
        "ALLOYSYNC_HTTP_PORT": str(free_port()),
        "ALLOYSYNC_WORKER_METRICS_PORT": str(free_port()),
        "ALLOYSYNC_SCHEDULER_METRICS_PORT": str(free_port()),
        "PYTHONPATH": str(REPO),
    }
    result = subprocess.run(
        [sys.executable, "-m", "alloysync", "demo", "--once", "--timeout", "150"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    output = result.stdout
    assert result.returncode == 0, f"{output}\n{result.stderr}"
    assert "jobs page    http://127.0.0.1:" in output and "/metrics (serve)" in output
    assert "every one-off demo job reached a final status" in output
    summary = output.split("every one-off demo job reached a final status")[1]
    assert "BTC price e-mail (one-off): Succeeded" in summary
    assert "BTC price e-mail at a set time: Succeeded" in summary
    assert "Broken job: unknown task: Invalid" in summary
    assert "Weekly price report (paused)" in output and "Paused" in output
    folder = tmp_path / ".alloysync-demo"
    assert sorted(path.name for path in folder.iterdir()) == ["logs"]  # Redis data removed, logs kept
    leftovers = subprocess.run(["pgrep", "-f", str(folder)], capture_output=True, text=True, check=False)
    assert leftovers.stdout.strip() == ""
