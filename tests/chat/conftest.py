"""Real chat servers (``wschannels-chat`` subprocesses), a real redis-server, headless Chromium.

Locally, a missing Chromium or redis-server skips the tests that need it; under CI
(``CI=true``) it fails them, so a broken CI image cannot pass by skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_TIMEOUT = 30.0  # seconds; generous for a loaded 2-core machine
UI_TIMEOUT = 15_000  # milliseconds, for Playwright's expectations


def missing(reason: str) -> None:
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
    ) -> None:
        self.port = port
        self.redis_url = redis_url
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
        env = {key: value for key, value in os.environ.items() if key != "WSCHANNELS_REDIS_URL"}
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


@pytest.fixture
def start_chat_server(tmp_path: Path) -> Iterator[Callable[..., ChatServer]]:
    """Start chat servers for one test; all of them are stopped afterwards."""
    servers: list[ChatServer] = []

    def start(
        port: int | None = None, redis_url: str | None = None, env: dict[str, str] | None = None
    ) -> ChatServer:
        server = ChatServer(tmp_path, port or free_port(), redis_url, env)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    """One chat server on the in-memory hub for a module's tests, each in rooms of its own."""
    server = ChatServer(tmp_path_factory.mktemp("chat"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh redis-server on a free port, for one test module."""
    executable = shutil.which("redis-server")
    if executable is None:
        missing("redis-server is not installed (apt-get install redis-server)")
    assert executable is not None
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=directory,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (no ``playwright install`` needed)."""
    executable = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if executable is None:
        missing("Chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Open pages, each in a browser context of its own (a separate person); closed afterwards."""
    contexts: list[Any] = []

    def open_page(width: int = 1000, height: int = 720, **options: Any) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height}, **options)
        context.set_default_timeout(UI_TIMEOUT)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """Where tests leave screenshots (gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
