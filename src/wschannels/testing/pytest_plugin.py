"""The ``ws_connect`` pytest fixture, registered when wschannels is installed.

It is :func:`wschannels.testing.connect`, and at the end of the test it drops
any connection the test left open, so one test's clients never leak into the
next. It is a plain fixture: it works under pytest-asyncio and anyio alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .client import Client, Connecting

__all__ = ["Connector", "ws_connect"]


class Connector:
    """``await ws_connect(url, ...)`` or ``async with ws_connect(url, ...) as client``."""

    def __init__(self) -> None:
        self._opened: list[Connecting] = []

    def __call__(self, target: str | Any, path: str | None = None, **settings: Any) -> Connecting:
        from .client import connect

        connecting = connect(target, path, **settings)
        self._opened.append(connecting)
        return connecting

    @property
    def clients(self) -> list[Client]:
        """Every client opened in this test, in order."""
        return [c.client for c in self._opened if c.client is not None]

    def _drop_all(self) -> None:
        for client in self.clients:
            client.abort()


@pytest.fixture
def ws_connect() -> Iterator[Connector]:
    """Open test WebSocket connections; any left open are dropped after the test."""
    connector = Connector()
    yield connector
    connector._drop_all()
