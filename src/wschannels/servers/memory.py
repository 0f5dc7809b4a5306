"""An in-memory server: a handler's WebSocket with no socket, for tests.

:class:`MemoryTransport` is the engine's transport made visible: every frame
written, the close code, an abort, each pause and resume of reading, each
ping, kept for a test to read. :func:`connect_memory` runs a decorated
handler on it through the same session pipeline as every real server and
hands back the client's end, a :class:`MemoryClient`: frames in, frames out,
held back while the engine pauses reading, as TCP would hold a client.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..close_codes import CloseCode
from ..codecs import Frame
from ..engine import Connection
from ..handler import spec_of
from ..session import Refusal, check_origin, open_connection, serve

__all__ = ["MemoryClient", "MemoryTransport", "connect_memory"]


class MemoryTransport:
    """The engine's :class:`~wschannels.engine.Transport`, recording what it is told.

    Args:
        auto_pong: answer each ping with a pong on the next loop turn.
        close_reply: answer a close frame as a well-behaved client does (the
            engine then hears ``peer_closed`` with the same code).
    """

    def __init__(self, *, auto_pong: bool = True, close_reply: bool = True) -> None:
        self.connection: Connection | None = None
        self.written: deque[Frame] = deque()
        self.close_code: int | None = None
        self.aborted = False
        self.paused = False
        self.pauses = 0
        self.resumes = 0
        self.pings = 0
        self.auto_pong = auto_pong
        self.close_reply = close_reply
        self._loop = asyncio.get_running_loop()
        self._blocked: asyncio.Future[None] | None = None
        self._changed = asyncio.Event()

    # -- what the engine calls ----------------------------------------------------------

    def write(self, frame: Frame) -> Awaitable[None] | None:
        if self.aborted:
            raise ConnectionResetError("the connection was aborted")
        self.written.append(frame)
        self._changed.set()
        if self._blocked is not None:
            return asyncio.shield(self._blocked)
        return None

    def close(self, code: int) -> None:
        self.close_code = code
        self._changed.set()
        if self.close_reply:
            self._loop.call_soon(self._reply_close, code)

    def _reply_close(self, code: int) -> None:
        if self.connection is not None and not self.aborted:
            self.connection.peer_closed(code)

    def abort(self) -> None:
        self.aborted = True
        self._changed.set()

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False
        self.resumes += 1
        self._changed.set()

    def ping(self, on_pong: Callable[[], None]) -> None:
        self.pings += 1
        if self.auto_pong:
            self._loop.call_soon(on_pong)

    # -- what a test controls -------------------------------------------------------------

    def block_writes(self) -> None:
        """From now on every write waits, as on a socket whose buffer is full."""
        if self._blocked is None:
            self._blocked = self._loop.create_future()

    def unblock_writes(self) -> None:
        """Let waiting writes complete, and further ones complete at once."""
        blocked, self._blocked = self._blocked, None
        if blocked is not None and not blocked.done():
            blocked.set_result(None)

    async def changed(self) -> None:
        """Wait until something is written, closed, aborted or resumed."""
        self._changed.clear()
        await self._changed.wait()


class MemoryClient:
    """The client's end of an in-memory WebSocket to a handler."""

    def __init__(self, transport: MemoryTransport, task: asyncio.Task[None]) -> None:
        self.transport = transport
        self.task = task
        connection = transport.connection
        assert connection is not None
        self.connection = connection
        self._closed_by_client = False

    async def send(self, frame: Frame) -> None:
        """Send a message; waits while the server holds the client back (its receiver is full)."""
        transport = self.transport
        while transport.paused and not transport.aborted:
            await transport.changed()
        if self._closed_by_client:
            raise ConnectionError("the client closed the connection")
        self.connection.feed(frame)

    # A test client must never hang: a default timeout is the point (hence no ASYNC109).
    async def receive(self, timeout: float = 5.0) -> Frame:  # noqa: ASYNC109
        """The next frame the server wrote.

        Raises:
            TimeoutError: none within ``timeout`` seconds.
            ConnectionError: the server closed (``close_code`` says how) and wrote nothing more.
        """
        transport = self.transport
        async with asyncio.timeout(timeout):
            while not transport.written:
                if transport.close_code is not None or transport.aborted:
                    raise ConnectionError(f"the server closed (code {self.close_code})")
                await transport.changed()
        return transport.written.popleft()

    def close(self, code: int = CloseCode.NORMAL_CLOSURE) -> None:
        """Close from the client's side with ``code``."""
        self._closed_by_client = True
        self.connection.peer_closed(code)

    def drop(self) -> None:
        """Go away without a close frame (the network failed: 1006)."""
        self._closed_by_client = True
        self.connection.peer_closed(CloseCode.ABNORMAL_CLOSURE)

    @property
    def close_code(self) -> int | None:
        """The code the connection closed with (the server's, or the client's if it was first)."""
        return self.connection.close_code

    async def wait_closed(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the handler is over."""
        async with asyncio.timeout(timeout):
            await asyncio.shield(self.task)


async def connect_memory(
    handler: Callable[..., Awaitable[None]],
    arguments: Mapping[str, Any] | None = None,
    *,
    origin: str | None = None,
    host: str = "testserver",
    transport: MemoryTransport | None = None,
    keepalive: bool = False,
) -> MemoryClient:
    """Open an in-memory WebSocket to a decorated handler, through the session pipeline.

    Args:
        handler: a handler decorated by a binding.
        arguments: its parameters other than views (a path would give them).
        origin: the Origin header the client sends (None: none, as non-browser clients).
        host: the Host header.
        transport: a transport to use, e.g. ``MemoryTransport(auto_pong=False)``.
        keepalive: ping as the frame-level servers do (``ping_period``, ``pong_wait``).

    Raises:
        PermissionError: the handler's origin check refuses ``origin`` (the 403 a server sends).
    """
    spec = spec_of(handler)
    refusal: Refusal | None = check_origin(spec, origin, host, "memory")
    if refusal is not None:
        raise PermissionError(f"{refusal.status} {refusal.body.decode()}")
    transport = transport if transport is not None else MemoryTransport()
    connection = open_connection(spec, transport, "memory", keepalive=keepalive)
    transport.connection = connection
    task = asyncio.get_running_loop().create_task(serve(spec, connection, dict(arguments or {})))
    return MemoryClient(transport, task)
