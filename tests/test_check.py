"""`alloysync check` in depth, as a real process against a real emulator: the jobs design, each configured
attribute and its type, optional features that are off, and one query of the design."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from alloysync.local.redis_server import RedisServer
from alloysync.model.design import BY_FIELD, JOB_ATTRIBUTES
from alloysync.settings import JobAttributeCodes
from alloysync.state.connections import redis_version_problem
from tests.support.emulator import EmulatorProcess

REPO = Path(__file__).resolve().parents[1]
DESIGN = "designs_councilJobs"
DEFAULTS = JobAttributeCodes()


@pytest.fixture
def tenant(tmp_path: Path) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path / "emulator", seed="empty")
    process.start()
    yield process
    process.stop()


def define_jobs_design(
    tenant: EmulatorProcess, *, without: tuple[str, ...] = (), types: dict[str, str] | None = None
) -> None:
    """The jobs design under the default codes, lacking some attributes or with other types."""
    attributes = {
        getattr(DEFAULTS, attribute.field): (types or {}).get(attribute.field, attribute.type.value)
        for attribute in JOB_ATTRIBUTES
        if attribute.field not in without and attribute.field != "title"  # Title: the items interface
    }
    tenant.define_design(DESIGN, attributes, name="Council jobs")


def check(tenant: EmulatorProcess, redis_server: RedisServer, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ALLOYSYNC_")}
    return subprocess.run(
        [sys.executable, "-m", "alloysync", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **clean,
            "PYTHONPATH": str(REPO),
            "ALLOYSYNC_ALLOY_URL": tenant.url,
            "ALLOYSYNC_ALLOY_TOKEN": tenant.token,
            "ALLOYSYNC_REDIS_URL": redis_server.url,
            "ALLOYSYNC_JOBS_DESIGN": DESIGN,
            **env,
        },
        cwd=tenant.workdir,
        check=False,
    )


def test_missing_optional_attributes_are_features_that_are_off(
    tenant: EmulatorProcess, redis_server: RedisServer
) -> None:
    define_jobs_design(tenant, without=("backfill", "notify", "notify_on"))
    before = tenant.stats()

    result = check(tenant, redis_server)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    off = [line for line in result.stdout.splitlines() if line.startswith("off ")]
    assert [line.split(" is off")[0] for line in off] == [
        "off      feature: backfill",
        "off      feature: notifications",
        "off      feature: notification policy",
    ]
    assert "ALLOYSYNC_ATTRIBUTES__BACKFILL=attributes_alloysyncJobsBackfill" in off[0]
    assert f"alloysync setup --adopt {DESIGN}" in off[0]
    assert (
        f"ok       design: {len(JOB_ATTRIBUTES) - 3} of {len(JOB_ATTRIBUTES)} job attributes" in result.stdout
    )
    assert f"ok       alloy query: the key can query {DESIGN} (no job records yet)" in result.stdout
    after = tenant.stats()
    # Deep, but cheap: one read of the design and one AQS query.
    assert sum(after.get("query", {}).values()) - sum(before.get("query", {}).values()) == 1
    assert sum(after.get("read", {}).values()) - sum(before.get("read", {}).values()) == 1


def test_a_wrongly_typed_or_missing_required_attribute_is_a_problem_naming_setting_and_fix(
    tenant: EmulatorProcess, redis_server: RedisServer
) -> None:
    define_jobs_design(tenant, without=("task",), types={"status": "Number", "overlap": "Boolean"})

    result = check(tenant, redis_server)

    assert result.returncode == 1
    problems = result.stderr.strip().splitlines()
    assert len(problems) == 3, problems
    assert all(line.startswith("problem  design: ") for line in problems)
    task, status, overlap = problems
    assert f"ALLOYSYNC_ATTRIBUTES__TASK={DEFAULTS.task} is not an attribute of design {DESIGN}" in task
    assert f"alloysync setup --adopt {DESIGN}" in task
    assert f"ALLOYSYNC_ATTRIBUTES__STATUS={DEFAULTS.status} is a Number attribute" in status
    assert "needs a String attribute" in status
    assert "ALLOYSYNC_ATTRIBUTES__OVERLAP" in overlap and "Boolean" in overlap
    assert f"{BY_FIELD['overlap'].feature} is off" in result.stdout  # unusable, so off as well


def test_the_right_codes_in_the_settings_fix_it(tenant: EmulatorProcess, redis_server: RedisServer) -> None:
    define_jobs_design(tenant, without=("status",))
    tenant.add_attribute(
        DESIGN, "Job state", {"discriminator": "DodiAttributeOptionsStringWebModel", "max": 20}
    )
    state = next(
        attribute["code"]
        for attribute in tenant.get_design(DESIGN)["attributes"]
        if attribute["name"] == "Job state"
    )

    assert check(tenant, redis_server).returncode == 1
    result = check(tenant, redis_server, ALLOYSYNC_ATTRIBUTES__STATUS=state)
    assert result.returncode == 0, result.stderr


def test_a_missing_design_points_at_setup(tenant: EmulatorProcess, redis_server: RedisServer) -> None:
    result = check(tenant, redis_server)

    assert result.returncode == 1
    (problem,) = result.stderr.strip().splitlines()
    assert problem.startswith(f"problem  design: ALLOYSYNC_JOBS_DESIGN={DESIGN}: Alloy has no such design")
    assert "run `alloysync setup`" in problem
    assert "ok       redis:" in result.stdout


class _ServerInfo:
    """A Redis server's INFO, for versions no redis-server here can run (older than 6.2)."""

    def __init__(self, version: str) -> None:
        self.version = version

    def info(self, section: str) -> dict[str, str]:
        assert section == "server"
        return {"redis_version": self.version}


def test_a_redis_older_than_6_2_is_named_and_newer_ones_pass(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    assert redis_version_problem(client) is None  # the redis-server the tests run
    client.close()
    problem = redis_version_problem(_ServerInfo("6.0.16"))  # type: ignore[arg-type]
    assert problem == "Redis 6.0.16 is too old: alloysync needs Redis 6.2 or newer"
    assert redis_version_problem(_ServerInfo("6.2.0")) is None  # type: ignore[arg-type]
    assert redis_version_problem(_ServerInfo("7.2.4")) is None  # type: ignore[arg-type]


class _OldRedis:
    """A loopback server that speaks enough RESP to say it is Redis 6.0.16 (no redis-server that old
    runs here): HELLO and INFO answer with that version, every other command with +OK."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.commands: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self.listener.accept()
                threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            reader = connection.makefile("rb")
            while header := reader.readline():
                words = []
                for _ in range(int(header[1:])):  # *<n>, then $<len> and the word, n times
                    length = int(reader.readline()[1:])
                    words.append(reader.read(length + 2)[:-2].decode())
                self.commands.append(words[0].upper())
                if words[0].upper() == "INFO":
                    text = b"# Server\r\nredis_version:6.0.16\r\n"
                    connection.sendall(b"$%d\r\n%s\r\n" % (len(text), text))
                elif words[0].upper() == "HELLO":  # the handshake, as 6.0 answers `HELLO 3`
                    connection.sendall(
                        b"%3\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n6.0.16\r\n"
                        b"$5\r\nproto\r\n:3\r\n"
                    )
                else:
                    connection.sendall(b"+OK\r\n")

    def close(self) -> None:
        self.listener.close()


def test_the_worker_refuses_a_redis_older_than_6_2_before_it_starts_anything(tmp_path: Path) -> None:
    old = _OldRedis()
    try:
        env = {
            **os.environ,
            "ALLOYSYNC_REDIS_URL": f"redis://127.0.0.1:{old.port}/0",
            "ALLOYSYNC_TASK_MODULES": '["tests.support.tasks"]',
            "PYTHONPATH": str(REPO),
            "TMPDIR": str(tmp_path),
        }
        done = subprocess.run(
            [sys.executable, "-m", "alloysync", "worker"], env=env, capture_output=True, text=True, timeout=60
        )
    finally:
        old.close()
    assert done.returncode == 2, done.stderr
    assert "Redis 6.0.16 is too old: alloysync needs Redis 6.2 or newer" in done.stderr
    assert "INFO" in old.commands
    assert not (tmp_path / "alloysync-worker-metrics").exists()  # no worker process was started
