"""Fixtures shared by the whole suite: free ports and a real uvicorn server per test."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn

import wschannels


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A running uvicorn server: its base URLs and the Origin a same-origin page sends."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.http = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}"
        self.origin = self.http


@contextlib.asynccontextmanager
async def serve(
    app: Any, options: wschannels.Options | None = None, **settings: Any
) -> AsyncIterator[Server]:
    """Run ``app`` on a real uvicorn server on 127.0.0.1 for the block's duration."""
    port = free_port()
    settings.setdefault("log_level", "warning")
    settings.setdefault("lifespan", "off")
    config = wschannels.uvicorn_config(app, options, host="127.0.0.1", port=port, **settings)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield Server(port)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 10)


def pytest_report_header() -> list[str]:
    """Name the servers the reliability suite leaves out here, and why."""
    from bench.servers import registry

    return [f"reliability suite: not on {why}" for why in registry.unavailable().values()]


@pytest.fixture
def server_factory() -> Callable[..., contextlib.AbstractAsyncContextManager[Server]]:
    """``async with server_factory(app) as server:`` runs a real uvicorn server."""
    return serve
