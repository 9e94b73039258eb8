"""A private `redis-server` process: started by `alloysync demo` and by the tests.

It listens on 127.0.0.1 only, keeps its data in a folder of its own with append-only persistence
(`appendfsync always`), so stopping and starting it again keeps every key — which is what the
crash tests rely on when they restart Redis under a running system.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import redis

from alloysync.local.children import Child

INSTALL_HINT = (
    "redis-server was not found on PATH: install it (Debian/Ubuntu: `sudo apt-get install redis-server`, "
    "macOS: `brew install redis`) or point ALLOYSYNC_REDIS_URL at a running Redis"
)


class RedisServerError(RuntimeError):
    """redis-server could not be found or started."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One redis-server child process with its data in `data_dir`."""

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port(host)
        self.child: Child | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError(INSTALL_HINT)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            binary,
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        self.child = Child(
            "redis-server", command, dict(os.environ), self.data_dir / "redis-server.out"
        ).start()
        deadline = time.monotonic() + timeout
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5)
        try:
            while True:
                if not self.child.alive:
                    log = (self.data_dir / "redis.log").read_text(errors="replace")[-2000:]
                    raise RedisServerError(f"redis-server exited with {self.child.returncode}: {log}")
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise RedisServerError(f"redis-server did not answer on {self.url}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop it cleanly (SIGTERM: the AOF is already fsynced on every write)."""
        if self.child is not None:
            self.child.stop(timeout)
        self.child = None

    def kill(self) -> None:
        """SIGKILL it, as a crash would."""
        if self.child is not None:
            self.child.kill()
        self.child = None
