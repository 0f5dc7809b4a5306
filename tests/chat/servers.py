"""Chat servers as subprocesses of the ``wschannels-chat`` console script, as a user starts them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0  # seconds; generous for a loaded 2-core machine


def missing(reason: str) -> NoReturn:
    """Skip locally, fail under CI: there a test must not pass by skipping."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: a missing dependency is a failure)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def chat_command() -> list[str]:
    """The ``wschannels-chat`` console script next to this interpreter (the README's command)."""
    script = Path(sys.executable).with_name("wschannels-chat")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "wschannels.chat"]


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


class ChatServer:
    """One ``wschannels-chat`` process on 127.0.0.1; can be killed and started again on its port."""

    def __init__(
        self,
        log_dir: Path,
        port: int,
        redis_url: str | None = None,
        env: dict[str, str] | None = None,
        nats_url: str | None = None,
    ) -> None:
        self.port = port
        self.redis_url = redis_url
        self.nats_url = nats_url
        self.extra_env = env or {}
        self.log_path = log_dir / f"chat-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ChatServer:
        command = [*chat_command(), "--host", "127.0.0.1", "--port", str(self.port)]
        if self.redis_url is not None:
            command += ["--redis", self.redis_url]
        if self.nats_url is not None:
            command += ["--nats", self.nats_url]
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("WSCHANNELS_REDIS_URL", "WSCHANNELS_NATS_URL")
        }
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )
        self._wait_until_serving()
        return self

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"chat server exited early:\n{self.log()}")
            try:
                get_json(f"{self.url}/status", timeout=1.0)
                return
            except (OSError, urllib.error.URLError, ValueError):
                time.sleep(0.05)
        raise RuntimeError(f"chat server not serving after {STARTUP_TIMEOUT}s:\n{self.log()}")

    def kill(self) -> None:
        """End the process at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """End the process politely, then firmly."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = get_json(f"{self.url}/status")
        return result

    def wait_for_status(
        self, check: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """Poll ``/status`` until ``check`` holds; returns that status."""
        deadline = time.monotonic() + timeout
        status = self.status()
        while not check(status):
            if time.monotonic() > deadline:
                raise AssertionError(f"status never matched; last: {status}")
            time.sleep(0.05)
            status = self.status()
        return status

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
