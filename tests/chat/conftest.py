"""Real chat servers (``wschannels-chat`` subprocesses), a real redis-server, headless Chromium.

Locally, a missing Chromium or redis-server skips the tests that need it; under CI
(``CI=true``) it fails them, so a broken CI image cannot pass by skipping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from ..nats_server import NatsServer
from ..redis_server import RedisServer
from .room_page import CHROMIUM_ARGS, chromium_executable
from .servers import ROOT, ChatServer, free_port, missing

ARTIFACTS = ROOT / "test-artifacts"
UI_TIMEOUT = 15_000  # milliseconds, for Playwright's expectations


@pytest.fixture
def start_chat_server(tmp_path: Path) -> Iterator[Callable[..., ChatServer]]:
    """Start chat servers for one test; all of them are stopped afterwards."""
    servers: list[ChatServer] = []

    def start(
        port: int | None = None,
        redis_url: str | None = None,
        env: dict[str, str] | None = None,
        nats_url: str | None = None,
    ) -> ChatServer:
        server = ChatServer(tmp_path, port or free_port(), redis_url, env, nats_url)
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
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.kill()


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh nats-server with JetStream on a free port, for one test module."""
    server = NatsServer(tmp_path_factory.mktemp("nats")).start()
    yield server.url
    server.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (no ``playwright install`` needed)."""
    executable = chromium_executable()
    if executable is None:
        missing("Chromium is not installed (apt-get install chromium)")
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
