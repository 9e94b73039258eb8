"""Child processes of `alloysync demo` (and of the end-to-end tests): start, watch, stop, kill.

Each child runs in a session of its own, so stopping it reaches every process it forked (Dramatiq's
worker pool is a parent with worker and exposition children). Output goes to a log file per child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether `url` (a child's health or metrics page on loopback) answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URL built by us
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


@dataclass(eq=False, repr=False)  # no repr: the environment holds secrets
class Child:
    """One child process: what it runs (`argv`, copied), its environment (copied), its log file."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.argv = list(self.argv)
        self.env = dict(self.env)

    @classmethod
    def alloysync(
        cls, name: str, args: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
    ) -> Child:
        """A child running `alloysync ARGS` with this interpreter."""
        return cls(name, [sys.executable, "-m", "alloysync", *args], env, log_path, cwd)

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the child (it forwards the signal to processes it manages, as Dramatiq's CLI does),
        then SIGKILL whatever is left of its session after `timeout`."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait()
        self._reap_session()

    def kill(self) -> None:
        """SIGKILL the child's whole session, as a crash of the machine would."""
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        self.process.wait()
        self._reap_session()

    def _signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def _reap_session(self) -> None:
        """Kill stragglers of the session (forked grandchildren) once the leader is gone."""
        assert self.process is not None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
