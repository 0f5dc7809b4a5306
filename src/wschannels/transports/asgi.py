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

    __slots__ = ("_send",)

    def __init__(self, send: Any) -> None:
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


class AsgiReader:
    """Reads ASGI events for one connection, with no task of its own.

    In the background it drives ``receive()`` with future callbacks. When the
    handler's task waits in ``select`` on its receiver (or ``done``), that task
    adopts the pending read and waits on it directly: the server's wake-up
    reaches the handler with no hop through a reader task, and events already
    queued by the server are taken in the handler's own step. A case that
    fires meanwhile cancels the adopted read to wake the task; the
    server's queue keeps the event, so nothing is lost.

    Reading stops while the receiver is full (the client is held back through
    TCP) and resumes when the handler makes room.
    """

    __slots__ = (
        "_adopted",
        "_closed",
        "_connection",
        "_coro",
        "_holding",
        "_loop",
        "_parked",
        "_pending",
        "_receive",
        "_unpark_scheduled",
    )

    def __init__(self, receive: Any, connection: Connection) -> None:
        self._receive = receive
        self._connection = connection
        self._loop = asyncio.get_running_loop()
        self._coro: Any = None  # the receive() in flight
        self._pending: asyncio.Future[Any] | None = None  # what that receive() waits on
        self._adopted = False
        self._parked = False
        self._closed = False
        self._holding: asyncio.Future[None] | None = None
        self._unpark_scheduled = False

    def start(self) -> None:
        """Begin reading in the background."""
        self._resume_in_background(self._advance())

    def close(self) -> None:
        """Stop reading; the receive() in flight is abandoned, its event left with the server."""
        self._closed = True
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.remove_done_callback(self._on_ready)
        coro, self._coro = self._coro, None
        if coro is not None:
            coro.close()

    @property
    def parked(self) -> bool:
        """True while reading waits for room in the receiver."""
        return self._parked

    async def wait(self, waiter: Any) -> None:
        """Wait for ``waiter`` to fire, reading from the server meanwhile (see the class doc)."""
        fired = waiter.future
        if self._adopted or self._closed:
            await fired
            return
        self._adopted = True
        try:
            while not fired.done():
                read = self._pending
                if read is None:
                    read = self._advance()
                    if read is None or fired.done():
                        break
                else:
                    read.remove_done_callback(self._on_ready)
                waiter.pulled = read
                try:
                    await read
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # a real cancellation, not a case waking us
                finally:
                    waiter.pulled = None
                    self._advance()
        finally:
            self._adopted = False
            self._resume_in_background(self._pending)
        if not fired.done():
            await fired  # reading is parked or over: a case or an unpark fires it

    def schedule_unpark(self) -> None:
        """The receiver has room again: resume reading soon (not from inside a receive)."""
        if self._parked and not self._unpark_scheduled:
            self._unpark_scheduled = True
            self._loop.call_soon(self._unpark)

    def _unpark(self) -> None:
        self._unpark_scheduled = False
        if self._adopted or self._closed or self._pending is not None:
            return
        self._resume_in_background(self._advance())

    def _resume_in_background(self, read: asyncio.Future[Any] | None) -> None:
        if read is not None and not self._closed:
            read.add_done_callback(self._on_ready)

    def _on_ready(self, read: asyncio.Future[Any]) -> None:
        if read is self._pending and not self._adopted:
            self._resume_in_background(self._advance())

    def _advance(self) -> asyncio.Future[Any] | None:
        """Take every event available now; return what the next receive() waits on.

        None when reading is parked (receiver full) or over.
        """
        pending = self._pending
        if pending is not None:
            if not pending.done():
                return pending
            self._pending = None
        connection = self._connection
        while not self._closed:
            coro = self._coro
            if coro is None:
                if self._holding is not None or not connection.wants_frames():
                    self._parked = True
                    return None
                coro = self._coro = self._receive()
            try:
                yielded = coro.send(None)
            except StopIteration as stop:
                self._coro = None
                self._dispatch(stop.value)
                continue
            except asyncio.CancelledError:  # a case woke its waiter by cancelling this read
                self._coro = None
                continue
            except Exception as error:
                self._coro = None
                self._closed = True
                connection._log.info("reading failed: %r", error)
                connection.peer_closed(1006)
                return None
            self._parked = False
            if yielded is None:  # a bare yield: come back on the next loop turn
                yielded = self._loop.create_future()
                self._loop.call_soon(_set_done, yielded)
            else:
                yielded._asyncio_future_blocking = False
            self._pending = yielded
            return yielded  # type: ignore[no-any-return]
        return None

    def _dispatch(self, event: Any) -> None:
        kind = event["type"]
        if kind == "websocket.receive":
            frame = event.get("text")
            if frame is None:
                frame = event.get("bytes") or b""
            waiting = self._connection.feed(frame)
            if waiting is not None:  # no room after all: hold reading until it is delivered
                holding = self._holding = asyncio.ensure_future(waiting)
                holding.add_done_callback(self._held_delivered)
        elif kind == "websocket.disconnect":
            self._closed = True
            self._connection.peer_closed(event.get("code", 1005))

    def _held_delivered(self, _: asyncio.Future[None]) -> None:
        self._holding = None
        self._parked = True
        self.schedule_unpark()


def _set_done(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)
