"""Fixtures for the hub's tests; the parts themselves are in ``harness``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from .harness import WAIT, AppProcess, Client, Cluster, RedisServer


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    """Open clients for a test; all are closed afterwards."""
    clients: list[Client] = []

    async def open_client(port: int, path: str, *, reading: bool = True) -> Client:
        client = await Client.connect(port, path, reading=reading)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.resume()
        try:
            await asyncio.wait_for(client.close(), WAIT)
        except (TimeoutError, websockets.ConnectionClosed):
            pass


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test."""
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


@pytest.fixture
def apps() -> Iterator[list[AppProcess]]:
    """App processes started by a test; all are stopped afterwards."""
    started: list[AppProcess] = []
    yield started
    for app in started:
        app.stop()


@pytest.fixture
def start_app(tmp_path: Path, apps: list[AppProcess]) -> Callable[..., AppProcess]:
    """Start one app process on a Redis URL (``wait=False``: do not wait until it serves)."""

    def start(redis_url: str, env: dict[str, str] | None = None, wait: bool = True) -> AppProcess:
        app = AppProcess(tmp_path, redis_url, env)
        apps.append(app)
        return app.start(wait)

    return start


@pytest.fixture
def start_two_apps(start_app: Callable[..., AppProcess]) -> Callable[..., tuple[AppProcess, ...]]:
    """Start two app processes on one Redis URL side by side, and wait until both serve."""

    def start(redis_url: str, env: dict[str, str] | None = None) -> tuple[AppProcess, ...]:
        both = (start_app(redis_url, env, wait=False), start_app(redis_url, env, wait=False))
        for app in both:
            app.wait_until_serving()
        return both

    return start


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the tests of a module that break nothing; each uses rooms of its own."""
    directory = tmp_path_factory.mktemp("cluster")
    redis_server = RedisServer(directory).start()
    one = AppProcess(directory, redis_server.url).start(wait=False)
    two = AppProcess(directory, redis_server.url).start(wait=False)
    try:
        one.wait_until_serving()
        two.wait_until_serving()
        yield Cluster(redis_server, one, two)
    finally:
        one.stop()
        two.stop()
        redis_server.kill()
