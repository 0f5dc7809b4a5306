"""The picows adapter: handlers served straight from picows' frame callbacks.

picows parses frames in C and calls :meth:`_PicowsTransport.on_ws_frame` for
each; a message goes from there through :meth:`Connection.feed` to the
handler's waiting ``select``, and writes go synchronously to the socket
through picows (which frames them). No task and no queue in between: the
fastest way to serve a handler.

picows leaves some of RFC 6455's checks to the application; this adapter
does them, so that the picows path is as strict as the other servers: the
reserved bits (no extension is negotiated; checked on pings too, which the
adapter answers for that reason), fragment order, UTF-8 of text messages
and close codes each close the connection with 1002 or 1007, a GET that is
not an upgrade gets 400 and another protocol version than 13 gets 426.
One case stays picows' own: when a frame cannot be parsed (a second close
frame, say), picows does not deliver the frame before it in the same read.

picows exposes ping and pong, so each connection is kept alive by the
engine with its own route's ``ping_period`` and ``pong_wait``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from ..close_codes import CloseCode, answer_to_close
from ..codecs import Frame
from ..engine import Connection
from ..errors import InvalidMessage
from ..options import Options
from ..session import (
    NOT_AN_UPGRADE,
    NOT_FOUND,
    SHUTTING_DOWN,
    Refusal,
    check_origin,
    check_version,
    open_connection,
    serve,
)
from .drain import Drain, DrainingServer, announce, run_until_signalled
from .routing import Route, Routes

__all__ = ["PicowsServer", "run_picows", "serve_picows"]

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE
_PING = WSMsgType.PING
_PONG = WSMsgType.PONG

_logger = logging.getLogger("wschannels")


class _Fragments:
    """A fragmented message being assembled: its kind, its parts and their size."""

    __slots__ = ("kind", "parts", "size")

    def __init__(self, kind: WSMsgType) -> None:
        self.kind = kind
        self.parts: list[bytes] = []
        self.size = 0


class _PicowsTransport(WSListener):
    """One WebSocket: picows' listener, and the engine's transport."""

    __slots__ = (
        "_arguments",
        "_broken",
        "_connection",
        "_drain",
        "_feed",
        "_fragments",
        "_loop",
        "_on_pong",
        "_peer_code",
        "_route",
        "_send",
        "_server",
        "_socket",
        "_task",
        "_write_paused",
        "_ws",
        "disconnected",
    )

    def __init__(self, server: PicowsServer, route: Route, arguments: dict[str, Any]) -> None:
        self._server = server
        self._route = route
        self._arguments = arguments
        self._loop = server._loop
        self._ws: Any = None  # WSTransport
        self._socket: Any = None  # its asyncio transport
        self._send: Callable[[WSMsgType, Frame], None] = _not_connected
        self._connection: Connection | None = None
        self._feed: Callable[[Frame], bool] = _not_connected_feed
        self._task: asyncio.Task[None] | None = None
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._fragments: _Fragments | None = None
        self._on_pong: Callable[[], None] | None = None
        self._peer_code: int | None = None  # the client's close code, once it arrived
        self._broken = False  # the client broke the protocol
        self.disconnected = False

    # -- picows' callbacks ------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._ws = transport
        self._send = transport.send
        underlying = self._socket = transport.underlying_transport
        peername = underlying.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "unknown"
        spec = self._route.spec
        connection = self._connection = open_connection(spec, self, peer, keepalive=True)
        self._feed = connection.feed
        self._task = task = self._loop.create_task(self._serve(connection))
        task.add_done_callback(self._handler_finished)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if self._broken and kind is not _CLOSE:  # after a violation only the close counts
            return
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            self._fail(CloseCode.PROTOCOL_ERROR, "a frame has reserved bits set")
            return
        if kind is _PING:  # answered here, not by picows, so that its bits are checked first
            transport.send_pong(frame.get_payload_as_bytes())
            return
        if kind is _TEXT or kind is _BINARY:
            if self._fragments is not None:
                self._fail(CloseCode.PROTOCOL_ERROR, "a new message began inside a fragmented one")
                return
            if not frame.fin:
                self._fragments = _Fragments(kind)
                self._add_fragment(frame)
                return
            if kind is _TEXT:
                try:
                    self._feed(frame.get_payload_as_utf8_text())
                except UnicodeDecodeError:
                    self._invalid_text(frame.get_payload_as_bytes())
            else:
                self._feed(frame.get_payload_as_bytes())
        elif kind is _CONTINUATION:
            self._add_fragment(frame)
        elif kind is _CLOSE:
            self._peer_closing(frame)
        elif kind is _PONG:
            on_pong, self._on_pong = self._on_pong, None
            if on_pong is not None:
                on_pong()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.disconnected = True
        connection = self._connection
        if connection is not None:
            code = self._peer_code
            if code is None:
                code = self._close_code_sent_by_picows(connection)
            self.resume_writing()  # a write waiting for room is over
            connection.peer_closed(code)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- the engine's transport -------------------------------------------------------

    def write(self, frame: Frame) -> asyncio.Future[None] | None:
        """Write a frame through picows; a future while the socket's buffer is over its mark."""
        if type(frame) is str:
            self._send(_TEXT, frame)
        else:
            self._send(_BINARY, frame)
        if self._write_paused:
            drain = self._drain
            if drain is None:
                drain = self._drain = self._loop.create_future()
            return drain
        return None

    def close(self, code: int) -> None:
        """Send a close frame; the socket closes on the client's reply (or the engine aborts)."""
        ws = self._ws
        if self.disconnected:
            return
        if not ws.is_close_frame_sent:
            ws.send_close(WSCloseCode(code))
        if self._peer_code is not None:
            ws.disconnect()

    def abort(self) -> None:
        if self._ws is not None and not self.disconnected:
            self._ws.disconnect(False)  # the socket may not drain: do not wait for it

    def pause_reading(self) -> None:
        if not self.disconnected:
            self._socket.pause_reading()

    def resume_reading(self) -> None:
        if not self.disconnected:
            self._socket.resume_reading()

    def ping(self, on_pong: Callable[[], None]) -> None:
        self._on_pong = on_pong
        self._ws.send_ping()

    # -- fragmented messages, bad input, the client's close ------------------------------

    def _add_fragment(self, frame: WSFrame) -> None:
        fragments = self._fragments
        if fragments is None:
            self._fail(CloseCode.PROTOCOL_ERROR, "a continuation frame without a message")
            return
        fragments.size += frame.payload_size
        limit = self._route.spec.options.max_message_size
        if fragments.size > limit:
            self._fragments = None
            connection = self._connection
            assert connection is not None
            connection.message_too_big(fragments.size)
            return
        fragments.parts.append(frame.get_payload_as_bytes())
        if not frame.fin:
            return
        self._fragments = None
        message = b"".join(fragments.parts)
        if fragments.kind is _BINARY:
            self._feed(message)
            return
        try:
            text = message.decode()
        except UnicodeDecodeError:
            self._invalid_text(message)
            return
        self._feed(text)

    def _invalid_text(self, payload: bytes) -> None:
        connection = self._connection
        assert connection is not None
        connection.report(InvalidMessage(payload, "a text message is not valid UTF-8"))
        self._fail(CloseCode.INVALID_FRAME_PAYLOAD_DATA, "a text message is not valid UTF-8")

    def _fail(self, code: int, why: str) -> None:
        """The client broke the protocol: close with ``code``; ignore all but its close."""
        self._broken = True
        self._fragments = None
        connection = self._connection
        assert connection is not None
        connection.protocol_error(code, why)

    def _peer_closing(self, frame: WSFrame) -> None:
        """The client's close frame: answer it, close the socket, tell the engine."""
        ws = self._ws
        code, reply = answer_to_close(
            int(frame.get_close_code().value) if frame.payload_size >= 2 else None
        )
        self._peer_code = code
        if not ws.is_close_frame_sent:
            ws.send_close(WSCloseCode(reply))
        ws.disconnect()
        connection = self._connection
        assert connection is not None
        connection.peer_closed(code)

    def _close_code_sent_by_picows(self, connection: Connection) -> int:
        """1006, unless picows closed for its own reason (a frame over its size limit)."""
        handshake = self._ws.close_handshake
        sent = handshake.sent if handshake is not None else None
        if sent is None or connection.closed:
            return CloseCode.ABNORMAL_CLOSURE
        code = int(sent.code.value)
        if code == CloseCode.MESSAGE_TOO_BIG:  # a frame over the server's max_frame_size
            connection.message_too_big(None)
        return code

    # -- the handler -------------------------------------------------------------------

    async def _serve(self, connection: Connection) -> None:
        with self._server.drain.session(connection):
            await serve(self._route.spec, connection, self._arguments)

    def _handler_finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            _logger.error("connection failed", exc_info=task.exception())
        if not self.disconnected:  # the engine is over: let picows flush, then close
            self._ws.disconnect()


def _not_connected(kind: WSMsgType, frame: Frame) -> None:
    raise ConnectionError("not connected yet")


def _not_connected_feed(frame: Frame) -> bool:
    raise ConnectionError("not connected yet")


class PicowsServer(DrainingServer):
    """A running :func:`serve_picows` server; an async context manager that closes it.

    ``close()`` stops accepting connections (503 for a handshake under way)
    and closes every open one with 1001 (going away) after what is queued
    for it; ``await wait_closed()`` returns once every handler has returned.
    """

    def __init__(self, routes: Routes, max_frame_size: int, drain: Drain) -> None:
        super().__init__(drain)
        self.drain = drain
        self._loop = asyncio.get_running_loop()
        self._routes = routes
        self._max_frame_size = max_frame_size
        self._server: asyncio.Server | None = None

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening sockets."""
        return tuple(self._server.sockets) if self._server is not None else ()

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()

    def _listener(self, request: WSUpgradeRequest) -> Any:
        """picows' listener factory: route, check the origin, the upgrade and its version."""
        if self.drain.closing:
            return _refuse(SHUTTING_DOWN)
        found = self._routes.match(request.path.decode("latin-1"))
        if found is None:
            return _refuse(NOT_FOUND)
        route, arguments = found
        headers = request.headers
        refusal = check_origin(
            route.spec, headers.get("Origin"), headers.get("Host"), f"picows {route.template}"
        )
        if refusal is None and "websocket" not in headers.get("Upgrade", "").lower():
            refusal = NOT_AN_UPGRADE
        if refusal is None:
            refusal = check_version(
                headers.getall("Sec-WebSocket-Version", []), headers.getall("Sec-WebSocket-Key", [])
            )
        if refusal is not None:
            return _refuse(refusal)
        return _PicowsTransport(self, route, arguments)


def _refuse(refusal: Refusal) -> WSUpgradeResponseWithListener:
    response = WSUpgradeResponse.create_error_response(
        refusal.status,
        refusal.body,
        {"Content-Type": "text/plain; charset=utf-8", **dict(refusal.headers)},
    )
    return WSUpgradeResponseWithListener(response, None)


async def serve_picows(
    routes: Mapping[str, Callable[..., Awaitable[None]]],
    host: str = "127.0.0.1",
    port: int = 8000,
    options: Options | None = None,
    *,
    shutdown_timeout: float = 10.0,
    handshake_timeout: float | None = 10.0,
    **settings: Any,
) -> PicowsServer:
    """Serve decorated handlers on picows; returns once listening.

    Args:
        routes: path template (Starlette syntax, ``/rooms/{name}``) → a handler
            decorated by a binding. Path parameters are passed to the handler's
            parameters of the same name.
        host: interface to listen on.
        port: TCP port (0 picks a free one: see :attr:`PicowsServer.port`).
        options: the server-wide frame-size limit (``max_message_size``): by
            default the largest of the routes'. Everything else, keepalive
            included, comes from each route's own binding.
        shutdown_timeout: seconds ``close()`` lets connections end (1001 after
            what is queued) before their sockets are dropped and their handlers
            cancelled.
        handshake_timeout: seconds a client has to send its whole handshake
            request (None: no limit); a client that trickles it is cut then.
            (picows has no hook for a cap on handshakes under way, as
            ``serve_websockets(max_handshakes=...)`` has: put a proxy in front.)
        settings: other ``picows.ws_create_server`` settings, e.g. ``backlog``.

    Raises:
        TypeError: a handler is not decorated, or needs a parameter its path
            does not give.
    """
    compiled = Routes(routes, "picows")
    if options is not None:
        max_frame_size = options.max_message_size
    else:
        max_frame_size = max(
            (route.spec.options.max_message_size for route in compiled), default=65536
        )
    server = PicowsServer(compiled, max_frame_size, Drain(shutdown_timeout))
    picows_settings: dict[str, Any] = {
        "websocket_handshake_timeout": handshake_timeout,
        "enable_auto_ping": False,  # the engine pings each connection with its route's options
        "enable_auto_pong": False,  # pings are answered after their frame is checked
        "max_frame_size": max_frame_size,
        # picows grows its read buffer as messages need; starting at 4 KiB instead of
        # 16 KiB saves 12 kB per connection at no cost in throughput.
        "read_buffer_init_size": 4096,
    }
    picows_settings.update(settings)
    listening = await ws_create_server(server._listener, host, port, **picows_settings)
    server._server = listening
    server._port = int(listening.sockets[0].getsockname()[1])
    announce(host, server.port, "picows")
    return server


def run_picows(
    routes: Mapping[str, Callable[..., Awaitable[None]]],
    host: str = "127.0.0.1",
    port: int = 8000,
    options: Options | None = None,
    *,
    shutdown_timeout: float = 10.0,
    **settings: Any,
) -> None:
    """Serve ``routes`` with :func:`serve_picows` until SIGINT or SIGTERM, then drain.

    Prints one line to stderr once listening; uvloop runs the loop when installed.
    """

    async def start() -> DrainingServer:
        return await serve_picows(
            routes, host, port, options, shutdown_timeout=shutdown_timeout, **settings
        )

    run_until_signalled(start, host, "picows")
