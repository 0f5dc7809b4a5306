"""The `websockets` adapter: handlers served on the websockets library's asyncio server.

websockets does the protocol: it parses and checks frames, assembles
fragmented messages, answers pings and refuses a handshake it cannot accept
(405 for another method, 426 without an upgrade, 400 for a bad one). This
adapter routes the handshake (404, 403 for another origin, 503 while
shutting down), gives each connection its route's ``max_message_size``, and
carries the session: one reader task per connection feeds the engine, and
writes go through websockets' ``send`` without a task while the socket has
room (:mod:`.stepping`).

websockets exposes ping and pong, so the engine keeps each connection alive
with its own route's ``ping_period`` and ``pong_wait``; websockets' own
keepalive is off.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State as ProtocolState

from ..close_codes import CloseCode
from ..codecs import Frame
from ..engine import Connection
from ..options import Options
from ..session import NOT_FOUND, SHUTTING_DOWN, check_origin, open_connection, serve
from .drain import Drain, DrainingServer, announce, run_until_signalled
from .routing import Route, Routes
from .stepping import finish, run_soon, step

__all__ = ["WebsocketsServer", "run_websockets", "serve_websockets"]

_OPEN = ProtocolState.OPEN


class _WebsocketsTransport:
    """The engine's transport over one websockets ``ServerConnection``."""

    __slots__ = ("_closing", "_loop", "_paused", "_resumed", "_ws")

    def __init__(self, ws: ServerConnection) -> None:
        self._ws = ws
        self._loop = asyncio.get_running_loop()
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        self._closing: asyncio.Task[None] | None = None

    async def read(self, connection: Connection) -> None:
        """Feed every message to the engine, then tell it how the connection ended."""
        ws = self._ws
        try:
            while True:
                if self._paused:  # websockets' own queue fills, then TCP holds the client
                    self._resumed = self._loop.create_future()
                    await self._resumed
                connection.feed(await ws.recv())
        except ConnectionClosed as closed:
            sent = closed.sent
            if sent is not None and closed.rcvd_then_sent is not True and not connection.closed:
                # websockets closed on its own: the client broke the protocol or a limit.
                if sent.code == CloseCode.MESSAGE_TOO_BIG:
                    connection.message_too_big(None)
                else:
                    connection.protocol_error(sent.code, sent.reason or "a protocol error")
            rcvd = closed.rcvd
            connection.peer_closed(rcvd.code if rcvd is not None else CloseCode.ABNORMAL_CLOSURE)

    # -- the engine's transport -------------------------------------------------------

    def write(self, frame: Frame) -> Awaitable[None] | None:
        if self._ws.state is not _OPEN:
            # The client's close arrived and is being read: the frame cannot reach it,
            # and stepping a send on a closing connection would wait on a timeout.
            return None
        return run_soon(self._ws.send(frame))

    def close(self, code: int) -> None:
        # websockets' close waits for the client's reply under a timeout of its own:
        # it needs a task of its own.
        if self._closing is None:
            self._closing = self._loop.create_task(self._ws.close(code))

    def abort(self) -> None:
        self._ws.transport.abort()

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        resumed, self._resumed = self._resumed, None
        if resumed is not None and not resumed.done():
            resumed.set_result(None)

    def ping(self, on_pong: Callable[[], None]) -> None:
        if self._ws.state is not _OPEN:
            return

        def pong_received(pong: asyncio.Future[float]) -> None:
            if not pong.cancelled() and pong.exception() is None:
                on_pong()

        def sent(pinging: asyncio.Future[Awaitable[float]]) -> None:
            if not pinging.cancelled() and pinging.exception() is None:
                asyncio.ensure_future(pinging.result()).add_done_callback(pong_received)

        coro = self._ws.ping()
        done, result = step(coro)
        if done:
            asyncio.ensure_future(result).add_done_callback(pong_received)
        else:  # the socket is full: the ping waits for room in a task
            self._loop.create_task(finish(coro, result)).add_done_callback(sent)


class WebsocketsServer(DrainingServer):
    """A running :func:`serve_websockets` server; an async context manager that closes it.

    ``close()`` stops accepting connections (503 for a handshake under way)
    and closes every open one with 1001 (going away) after what is queued
    for it; ``await wait_closed()`` returns once every handler has returned.
    """

    def __init__(self, routes: Routes, drain: Drain) -> None:
        super().__init__(drain)
        self.drain = drain
        self._routes = routes
        self._server: Any = None  # websockets.asyncio.server.Server
        # Routed handshakes, until websockets accepts them (or refuses: then they go).
        self._accepted: weakref.WeakKeyDictionary[ServerConnection, tuple[Route, dict[str, Any]]]
        self._accepted = weakref.WeakKeyDictionary()
        self._handshakes: _Handshakes | None = None  # set by serve_websockets

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening sockets."""
        return tuple(self._server.sockets) if self._server is not None else ()

    def _stop_listening(self) -> None:
        # websockets stops listening; the open connections are the drain's.
        self._server.close(close_connections=False)

    async def _stopped(self) -> None:
        await self._server.wait_closed()

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        """Route the handshake and check its origin; websockets checks the rest."""
        handshakes = self._handshakes
        if handshakes is not None:
            handshakes.pending.discard(ws)  # the request is in: no longer a handshake under way
        if self.drain.closing:
            return ws.respond(SHUTTING_DOWN.status, SHUTTING_DOWN.body.decode())
        found = self._routes.match(request.path)
        if found is None:
            return ws.respond(NOT_FOUND.status, NOT_FOUND.body.decode())
        route, arguments = found
        headers = request.headers
        refusal = check_origin(
            route.spec, headers.get("Origin"), headers.get("Host"), f"websockets {route.template}"
        )
        if refusal is not None:
            return ws.respond(refusal.status, refusal.body.decode())
        # The route's own limit, checked by websockets frame by frame: a message over it
        # is refused before it is read whole.
        ws.protocol.max_message_size = route.spec.options.max_message_size
        self._accepted[ws] = (route, arguments)
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        """websockets' connection handler: the session, with a reader task beside it."""
        route, arguments = self._accepted.pop(ws)
        address = ws.remote_address
        peer = f"{address[0]}:{address[1]}" if address else "unknown"
        transport = _WebsocketsTransport(ws)
        connection = open_connection(route.spec, transport, peer, keepalive=True)
        reader = asyncio.get_running_loop().create_task(transport.read(connection))
        try:
            with self.drain.session(connection):
                await serve(route.spec, connection, arguments)
        finally:
            if not reader.done():  # the engine gave the connection up: its socket is gone
                reader.cancel()


class _Handshakes:
    """A cap on the handshakes under way at once: a connection over it is dropped at once.

    A handshake is under way from the TCP connection until the request is read
    (websockets then calls ``process_request``) or the connection is lost, so
    clients that open sockets and send nothing cannot pile up beyond the cap
    (each is also cut at ``handshake_timeout``).
    """

    __slots__ = ("limit", "pending", "refused")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.pending: weakref.WeakSet[ServerConnection] = weakref.WeakSet()
        self.refused = 0

    def connection_class(self) -> type[ServerConnection]:
        handshakes = self

        class CappedConnection(ServerConnection):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                if handshakes.limit is not None and len(handshakes.pending) >= handshakes.limit:
                    handshakes.refused += 1
                    transport.abort()  # type: ignore[attr-defined]
                    return
                handshakes.pending.add(self)

            def connection_lost(self, exc: Exception | None) -> None:
                handshakes.pending.discard(self)
                super().connection_lost(exc)

        return CappedConnection


async def serve_websockets(
    routes: Mapping[str, Callable[..., Awaitable[None]]],
    host: str = "127.0.0.1",
    port: int = 8000,
    options: Options | None = None,
    *,
    shutdown_timeout: float = 10.0,
    handshake_timeout: float | None = 10.0,
    max_handshakes: int | None = None,
    **settings: Any,
) -> WebsocketsServer:
    """Serve decorated handlers on the `websockets` library's server; returns once listening.

    Args:
        routes: path template (Starlette syntax, ``/rooms/{name}``) → a handler
            decorated by a binding. Path parameters are passed to the handler's
            parameters of the same name.
        host: interface to listen on.
        port: TCP port (0 picks a free one: see :attr:`WebsocketsServer.port`).
        options: the server-wide message-size limit (``max_message_size``): by
            default the largest of the routes'; each connection then gets its
            own route's. Everything else, keepalive included, comes from each
            route's own binding.
        shutdown_timeout: seconds ``close()`` lets connections end (1001 after
            what is queued) before their sockets are dropped and their handlers
            cancelled.
        handshake_timeout: seconds a client has to complete its handshake
            (None: no limit); a client that trickles it is cut then.
        max_handshakes: how many handshakes may be under way at once (None: no
            cap); a connection over it is dropped at once.
        settings: other ``websockets.asyncio.server.serve`` settings, e.g.
            ``compression="deflate"`` (off by default, as on picows) or ``max_queue``.

    Raises:
        TypeError: a handler is not decorated, or needs a parameter its path
            does not give.
    """
    compiled = Routes(routes, "websockets")
    if options is not None:
        max_size = options.max_message_size
    else:
        max_size = max((route.spec.options.max_message_size for route in compiled), default=65536)
    server = WebsocketsServer(compiled, Drain(shutdown_timeout))
    handshakes = server._handshakes = _Handshakes(max_handshakes)
    websockets_settings: dict[str, Any] = {
        "open_timeout": handshake_timeout,
        "create_connection": handshakes.connection_class(),
        "process_request": server._process_request,
        "ping_interval": None,  # the engine pings each connection with its route's options
        "ping_timeout": None,
        "max_size": max_size,
        "compression": None,
    }
    websockets_settings.update(settings)
    listening = await websockets_serve(server._handle, host, port, **websockets_settings)
    server._server = listening
    server._port = int(listening.sockets[0].getsockname()[1])
    announce(host, server.port, "websockets")
    return server


def run_websockets(
    routes: Mapping[str, Callable[..., Awaitable[None]]],
    host: str = "127.0.0.1",
    port: int = 8000,
    options: Options | None = None,
    *,
    shutdown_timeout: float = 10.0,
    **settings: Any,
) -> None:
    """Serve ``routes`` with :func:`serve_websockets` until SIGINT or SIGTERM, then drain.

    Prints one line to stderr once listening; uvloop runs the loop when installed.
    """

    async def start() -> DrainingServer:
        return await serve_websockets(
            routes, host, port, options, shutdown_timeout=shutdown_timeout, **settings
        )

    run_until_signalled(start, host, "websockets")
