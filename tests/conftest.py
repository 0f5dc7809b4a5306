"""Fixtures shared by the whole suite: free ports, a real uvicorn server, every server."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any

import pytest

import wschannels
import wschannels.testing
from wschannels.testing import LiveServer


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


Server = LiveServer


def serve(
    app: Any, options: wschannels.Options | None = None, **settings: Any
) -> contextlib.AbstractAsyncContextManager[LiveServer]:
    """Run ``app`` on a real uvicorn server on 127.0.0.1 for the block's duration."""
    settings.setdefault("lifespan", "off")
    return wschannels.testing.serve(app, options, **settings)


def pytest_report_header() -> list[str]:
    """Name the servers the reliability suite leaves out here, and why."""
    from bench.servers import registry

    return [f"reliability suite: not on {why}" for why in registry.unavailable().values()]


@pytest.fixture
def server_factory() -> Callable[..., contextlib.AbstractAsyncContextManager[Server]]:
    """``async with server_factory(app) as server:`` runs a real uvicorn server."""
    return serve


@pytest.fixture(params=["uvicorn", "picows", "websockets", "aiohttp"])
def serving(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``async with serving(handler) as server:`` serves ``handler`` at ``/`` on each server.

    See tests/servers.py; ``options`` and keyword settings go to uvicorn only (on the
    other servers each route's own options apply).
    """
    from tests.servers import SERVERS

    return SERVERS[request.param]
