"""A real ``nats-server -js`` on a free port, started by the tests that need one.

Locally a missing nats-server skips those tests; under CI (``CI=true``) it fails
them, so a broken CI machine cannot pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import free_port

STARTUP_TIMEOUT = 30.0  # seconds; generous for a loaded 2-core machine


def _nats_executable() -> str:
    executable = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if executable is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nats-server is not installed (CI=true: a missing dependency fails)")
        pytest.skip("nats-server is not installed (apt-get install nats-server)")
    return executable


class NatsServer:
    """A nats-server with JetStream on 127.0.0.1, storing under a test's directory."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.process = subprocess.Popen(
            [
                _nats_executable(),
                "-js",
                *("-a", "127.0.0.1", "-p", str(self.port)),
                *("-sd", str(self.directory / "jetstream")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(4) == b"INFO":
                        return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("nats-server did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
