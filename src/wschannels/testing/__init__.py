"""Testing WebSocket handlers: a client that never hangs, and a live server for a test.

::

    from wschannels.testing import connect, serve

    async def test_echo() -> None:
        async with serve(app) as server, connect(server.url("/echo/bob")) as client:
            await client.send({"text": "hi"})
            assert await client.receive_json() == {"text": "bob: hi"}

Every wait has a deadline (``timeout``, 5 s by default): a ``receive`` that
gets nothing raises :class:`ReceiveTimeout` listing what did arrive. The
``ws_connect`` pytest fixture is ``connect`` with clean-up. It needs the
``testing`` extra (the ``websockets`` client), and :func:`serve` the
``uvicorn`` extra.
"""

from .client import (
    DEFAULT_TIMEOUT,
    SAME_ORIGIN,
    Client,
    Closed,
    Connecting,
    ReceiveTimeout,
    Refused,
    basic_auth,
    bearer,
    connect,
    same_origin,
)
from .server import LiveServer, serve

__all__ = [
    "DEFAULT_TIMEOUT",
    "SAME_ORIGIN",
    "Client",
    "Closed",
    "Connecting",
    "LiveServer",
    "ReceiveTimeout",
    "Refused",
    "basic_auth",
    "bearer",
    "connect",
    "same_origin",
    "serve",
]
