"""The ASGI transport: the engine on any ASGI server (uvicorn, hypercorn, daphne, ...).

ASGI's ``send`` is a coroutine, but on a writable socket it finishes without
ever suspending. :func:`start` runs it that far synchronously, so a write
costs no task; only a write that must wait for the socket is handed to a task
that finishes it. That is what lets a Hub write to thousands of members in a
plain loop, and the handler's ``send`` return without a task switch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from ..codecs import Frame
from ..connection import Connection

__all__ = ["AsgiTransport", "start"]

Message = dict[str, Any]


def start(awaitable: Awaitable[None]) -> asyncio.Future[None] | None:
    """Run ``awaitable`` until it first has to wait; None if it finished.

    Raises what the awaitable raises before its first wait. When it has to
    wait, a task finishes it and is returned.
    """
    coro: Any = awaitable
    try:
        step = coro.send
    except AttributeError:  # an awaitable that is not a coroutine
        coro = awaitable.__await__()
        step = coro.send
    try:
        yielded = step(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_finish(coro, yielded))


async def _finish(coro: Any, yielded: Any) -> None:
    """Go on driving a coroutine that :func:`start` began, as a task would."""
    loop = asyncio.get_running_loop()
    while True:
        if yielded is None:  # a bare yield: give the loop one turn
            await asyncio.sleep(0)
        else:
            yielded._asyncio_future_blocking = False
            if not yielded.done():
                wake: asyncio.Future[None] = loop.create_future()
                yielded.add_done_callback(lambda _, wake=wake: wake.done() or wake.set_result(None))
                try:
                    await wake
                except asyncio.CancelledError:
                    # Cancel what the coroutine waits on; it sees CancelledError on resume.
                    if not yielded.cancel():
                        raise
        try:
            yielded = coro.send(None)
        except StopIteration:
            return


class AsgiTransport:
    """Writes frames and the close frame through an ASGI ``send`` callable."""

    __slots__ = ("_receive", "_send")

    def __init__(self, receive: Any, send: Any) -> None:
        self._receive = receive
        self._send = send

    def write(self, frame: Frame) -> asyncio.Future[None] | None:
        if type(frame) is str:
            coro = self._send({"type": "websocket.send", "text": frame})
        else:
            coro = self._send({"type": "websocket.send", "bytes": frame})
        try:  # the common case, inlined from start(): the write completes at once
            yielded = coro.send(None)
        except StopIteration:
            return None
        except AttributeError:
            return start(coro)
        return asyncio.ensure_future(_finish(coro, yielded))

    def close(self, code: int) -> asyncio.Future[None] | None:
        return start(self._send({"type": "websocket.close", "code": code}))

    async def read(self, connection: Connection) -> None:
        """Feed received frames to ``connection`` until the client is gone."""
        receive = self._receive
        feed = connection.feed
        while True:
            event = await receive()
            kind = event["type"]
            if kind == "websocket.receive":
                frame = event.get("text")
                if frame is None:
                    frame = event.get("bytes") or b""
                waiting = feed(frame)
                if waiting is not None:
                    await waiting
            elif kind == "websocket.disconnect":
                connection.peer_closed(event.get("code", 1005))
                return
