"""A server's open sessions and their graceful shutdown, shared by every server adapter.

An adapter runs each accepted session inside :meth:`Drain.session`. When the
server shuts down, :meth:`Drain.drain` closes every connection with 1001
(going away) after what is already queued for it, in batches so that a
server with many clients does not have them all reconnect in the same
instant; the handlers see ``done`` and return. What is still open
``shutdown_timeout`` seconds later is aborted and its handler cancelled.

:class:`DrainingServer` is what ``serve_picows`` and ``serve_websockets``
return; :func:`run_until_signalled` is their ``run_*`` form. Under aiohttp,
``aiohttp_setup`` runs the same drain from the application's shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Self

from ..close_codes import CloseCode
from ..engine import Connection

__all__ = ["Drain", "DrainingServer", "announce", "run_until_signalled"]

_logger = logging.getLogger("wschannels")

# Closes sent at once, and the pause between batches: 10,000 connections are told
# to go away over about one second instead of in one loop turn.
CLOSE_BATCH = 100
BATCH_PAUSE = 0.01

# How long cancelled handlers get to end once shutdown_timeout is over.
CANCEL_TIMEOUT = 5.0


class Drain:
    """The sessions a server has open, and how they are closed when it shuts down."""

    __slots__ = ("_idle", "_sessions", "closing", "shutdown_timeout")

    def __init__(self, shutdown_timeout: float) -> None:
        if not shutdown_timeout >= 0:
            raise ValueError(f"shutdown_timeout must be >= 0 seconds, got {shutdown_timeout!r}")
        self.shutdown_timeout = shutdown_timeout
        self.closing = False
        """True once the shutdown began: new handshakes are refused with 503."""
        self._sessions: dict[Connection, asyncio.Task[Any]] = {}
        self._idle: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    @contextlib.contextmanager
    def session(self, connection: Connection) -> Iterator[None]:
        """Track ``connection`` while the block (the task running its handler) runs."""
        task = asyncio.current_task()
        assert task is not None, "a session runs in a task"
        self._sessions[connection] = task
        if self.closing:  # accepted as the shutdown began
            connection.disconnect(CloseCode.GOING_AWAY)
        try:
            yield
        finally:
            del self._sessions[connection]
            idle = self._idle
            if not self._sessions and idle is not None and not idle.done():
                idle.set_result(None)

    async def drain(self) -> None:
        """Close every connection with 1001, wait for the handlers; cancel them after the timeout.

        Idempotent in effect: a second call waits for the same sessions.
        """
        self.closing = True
        try:
            async with asyncio.timeout(self.shutdown_timeout):
                await self._close_in_batches()
                await self._all_over()
            return
        except TimeoutError:
            pass
        _logger.warning(
            "%d connections still open %s s after the shutdown began: closing them",
            len(self._sessions),
            self.shutdown_timeout,
        )
        for connection, task in list(self._sessions.items()):
            connection.abort()
            task.cancel()
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT):
                await self._all_over()
        except TimeoutError:
            _logger.error("%d handlers did not end after they were cancelled", len(self._sessions))

    async def _close_in_batches(self) -> None:
        connections = list(self._sessions)
        for start in range(0, len(connections), CLOSE_BATCH):
            if start:
                await asyncio.sleep(BATCH_PAUSE)
            for connection in connections[start : start + CLOSE_BATCH]:
                connection.disconnect(CloseCode.GOING_AWAY)

    async def _all_over(self) -> None:
        while self._sessions:
            if self._idle is None or self._idle.done():
                self._idle = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._idle)


class DrainingServer:
    """A running ``serve_*`` server; an async context manager that closes it.

    ``close()`` stops accepting connections (a handshake already under way
    gets 503) and drains the open ones (:class:`Drain`); ``await
    wait_closed()`` returns once every handler has returned.
    """

    def __init__(self, drain: Drain) -> None:
        self._drain = drain
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._shutdown: asyncio.Task[None] | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The port listened on (useful with ``port=0``)."""
        return self._port

    @property
    def connections(self) -> int:
        """Connections open now (their handler running)."""
        return len(self._drain)

    @property
    def closing(self) -> bool:
        """True once ``close()`` was called."""
        return self._drain.closing

    def close(self) -> None:
        """Stop accepting; close every connection with 1001. Idempotent."""
        if self._shutdown is not None:
            return
        self._drain.closing = True
        self._stop_listening()
        self._shutdown = asyncio.get_running_loop().create_task(self._shut_down())

    async def wait_closed(self) -> None:
        """Wait until the server was closed and every connection is over."""
        await asyncio.shield(self._closed)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    def _stop_listening(self) -> None:
        """Close the listening sockets (the server's own API)."""
        raise NotImplementedError

    async def _stopped(self) -> None:
        """Wait for the server's own teardown, once every session is over."""

    async def _shut_down(self) -> None:
        try:
            await self._drain.drain()
            await self._stopped()
        finally:
            self._closed.set_result(None)


def announce(host: str, port: int, transport: str) -> str:
    """The line a server says when it starts listening, logged at INFO; returned for printing."""
    where = f"[{host}]" if ":" in host else host
    line = f"serving on ws://{where}:{port} ({transport})"
    _logger.info("%s", line)
    return line


def run_until_signalled(
    start: Callable[[], Awaitable[DrainingServer]], host: str, transport: str
) -> None:
    """Start a server, print its start-up line, serve until SIGINT or SIGTERM, then drain it.

    uvloop runs the loop when it is installed.
    """

    async def main() -> None:
        server = await start()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, server.close)
        where = f"[{host}]" if ":" in host else host
        print(
            f"wschannels: serving on ws://{where}:{server.port} ({transport});"
            " press CTRL+C to quit",
            file=sys.stderr,
            flush=True,
        )
        await server.wait_closed()

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
