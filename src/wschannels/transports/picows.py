"""The picows transport: handlers served straight from picows' frame callbacks.

picows parses frames in C and calls :meth:`WSListener.on_ws_frame` for each;
this transport hands a message from there to the handler's waiting
``select`` through :meth:`Connection.feed`, and writes synchronously to the
socket through picows (which frames it). There is no reader task and no
queue in between: a message costs the handler's wake-up and little else,
which makes this the fastest way to serve a handler.

Reading is pushed, so holding a client back is explicit: when the receiver
is full, reading pauses on the socket (TCP then holds the client back) and
frames picows had already read wait in a short backlog; reading resumes when
the handler makes room. A write that finds the socket's buffer over its
high-water mark returns a future that completes when the buffer drains, so
the engine's ``write_wait`` and the Hub's byte bounds apply as under ASGI.

Keepalive and the frame-size limit belong to the server, as under ASGI:
``ping_period`` and ``pong_wait`` become picows' auto-ping settings,
``max_message_size`` its ``max_frame_size``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

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
from starlette.convertors import Convertor
from starlette.routing import compile_path

from ..bindings import Route, _view, route_of
from ..channels import Channel
from ..close_codes import CloseCode
from ..codecs import Frame, InvalidMessage
from ..connection import Connection, MessageTooBig
from ..options import Options
from ..origin import origin_allowed

__all__ = ["PicowsServer", "run_picows", "serve_picows"]

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE

# How long a close frame we sent may wait for the client's before the socket is closed anyway.
_CLOSE_TIMEOUT = 5.0

_logger = logging.getLogger("wschannels")


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """One path template and the handler behind it."""

    template: str
    matcher: Any  # re.Pattern[str]
    convertors: dict[str, Convertor[Any]]
    route: Route
    defaults: tuple[tuple[str, Any], ...]  # handler parameters the path does not give


class _PeerEnded:
    """Where in the backlog the client closed (``code``) or went away (1006)."""

    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        self.code = code


class _Session(WSListener):
    """One WebSocket: picows' listener, and the engine's transport and puller.

    As the engine's puller (see :meth:`Connection.attach_puller`) it learns
    when the handler takes an item from a full receiver, which is when a
    paused read may go on.
    """

    __slots__ = (
        "_arguments",
        "_backlog",
        "_close_timer",
        "_connection",
        "_discarding",
        "_drain",
        "_feed",
        "_fragment_kind",
        "_fragment_size",
        "_fragments",
        "_held",
        "_holding",
        "_inbox",
        "_loop",
        "_parked",
        "_paused",
        "_peer_code",
        "_route",
        "_send",
        "_server",
        "_socket",
        "_task",
        "_unpark_scheduled",
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
        self._feed: Callable[[Frame], Awaitable[None] | None] = _not_connected_feed
        self._inbox: Channel[Any] | None = None  # the receiver's channel
        self._task: asyncio.Task[None] | None = None
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        # Reading: frames go to the backlog instead of the engine while _holding.
        self._holding = False
        self._discarding = False  # after a protocol error: nothing more is fed
        # Frames read while holding, made on the first hold (most connections never hold).
        self._backlog: deque[Frame | _PeerEnded] | None = None
        self._held: Generator[Any, None, None] | None = None  # a delivery waiting for room
        self._parked = False  # paused until the handler takes an item (the puller's flag)
        self._paused = False  # reading paused on the socket
        self._unpark_scheduled = False
        self._fragments: list[bytes] | None = None
        self._fragment_kind = _TEXT
        self._fragment_size = 0
        self._peer_code: int | None = None  # the client's close code, once it arrived
        self._close_timer: asyncio.TimerHandle | None = None
        self.disconnected = False

    # -- picows' callbacks ------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._ws = transport
        self._send = transport.send
        underlying = self._socket = transport.underlying_transport
        route = self._route
        peername = underlying.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "unknown"
        connection = self._connection = Connection(
            route.codec, route.options, self, peer, wants_receiver=route.wants_receiver
        )
        self._feed = connection.feed
        if route.wants_receiver:
            self._inbox = connection.receiver_channel
        connection.attach_puller(self)
        connection._log_connected()
        arguments = self._arguments
        for name, kind in route.injected:
            arguments[name] = _view(connection, kind)
        self._task = task = self._loop.create_task(connection.run(route.handler(**arguments)))
        task.add_done_callback(self._handler_finished)
        self._server._sessions.add(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        payload: Frame
        if kind is _TEXT:
            if not frame.fin:
                self._begin_fragments(frame, kind)
                return
            try:
                payload = frame.get_payload_as_utf8_text()
            except UnicodeDecodeError:
                self._invalid_text(frame.get_payload_as_bytes())
                return
        elif kind is _BINARY:
            if not frame.fin:
                self._begin_fragments(frame, kind)
                return
            payload = frame.get_payload_as_bytes()
        elif kind is _CONTINUATION:
            assembled = self._continue_fragments(frame)
            if assembled is None:
                return
            payload = assembled
        elif kind is _CLOSE:
            self._peer_closing(frame)
            return
        else:  # an unsolicited pong; pings are answered by picows
            return
        if self._holding:
            if not self._discarding:
                self._hold_back(payload)
            return
        waiting = self._feed(payload)
        if waiting is not None:
            self._hold(waiting)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.disconnected = True
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        connection = self._connection
        if connection is not None:
            if self._peer_code is None:
                self._peer_code = self._close_code_sent_by_picows(connection)
                self._peer_ended(self._peer_code)
            # A write waiting for room is over (the engine hears of the end from _peer_ended).
            self.resume_writing()
        self._server._session_over(self)

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
            return self._drained()
        return None

    def _drained(self) -> asyncio.Future[None]:
        drain = self._drain
        if drain is None or drain.done():
            drain = self._drain = self._loop.create_future()
        return drain

    def close(self, code: int) -> asyncio.Future[None] | None:
        """Send a close frame; the socket closes on the client's reply, or after a timeout."""
        ws = self._ws
        if not self.disconnected:
            if not ws.is_close_frame_sent:
                ws.send_close(WSCloseCode(code))
            if self._peer_code is not None:
                ws.disconnect()
            elif self._close_timer is None:
                self._close_timer = self._loop.call_later(_CLOSE_TIMEOUT, self._close_timed_out)
        if self._holding:  # read on (discarding) so that the client's close is seen
            self.schedule_unpark()
        return None

    def _close_timed_out(self) -> None:
        self._close_timer = None
        self._ws.disconnect(False)  # no close from the client: its socket may not drain either

    # -- reading, held back while the receiver is full ----------------------------------

    def _hold_back(self, item: Frame | _PeerEnded) -> None:
        backlog = self._backlog
        if backlog is None:
            backlog = self._backlog = deque()
        backlog.append(item)

    def _hold(self, waiting: Awaitable[None]) -> None:
        """The receiver is full: pause reading and deliver ``waiting`` when there is room."""
        self._holding = True
        if not self._paused and not self.disconnected:
            self._paused = True
            self._socket.pause_reading()
        connection = self._connection
        assert connection is not None
        connection.wants_frames()  # starts the engine's stalled-receiver clock
        self._held = waiting.__await__()
        self._step_held()

    def _step_held(self, _: object = None) -> None:
        """Drive the held delivery (no task: it is one wait on the receiver)."""
        held = self._held
        if held is None:
            return
        try:
            yielded = held.send(None)
        except StopIteration:
            pass
        except Exception as error:  # not expected: the engine's delivery only waits
            _logger.error("delivery to the receiver failed: %r", error)
        else:
            if yielded is None:  # a bare yield: come back on the next loop turn
                self._loop.call_soon(self._step_held)
            else:
                yielded._asyncio_future_blocking = False
                yielded.add_done_callback(self._step_held)
            return
        self._held = None
        if not self._discarding:
            self._go_on()

    def schedule_unpark(self) -> None:
        """The receiver has room (or the connection is closing): go on reading soon."""
        self._parked = False
        if not self._unpark_scheduled:
            self._unpark_scheduled = True
            self._loop.call_soon(self._unpark)

    def _unpark(self) -> None:
        self._unpark_scheduled = False
        if self._held is None and self._holding and not self._discarding:
            self._go_on()

    def _go_on(self) -> None:
        """Feed the backlog while the receiver has room, then read from the socket again.

        The engine is asked once per fill (which also runs its stalled-receiver
        clock); in between, the receiver's length says when it is full.
        """
        connection = self._connection
        assert connection is not None
        backlog = self._backlog
        if backlog is None:
            backlog = self._backlog = deque()
        feed = self._feed
        inbox = self._inbox
        while True:
            closing = connection.closed  # then everything is fed (and discarded)
            if not closing and not connection.wants_frames():
                self._parked = True  # the handler's next receive unparks
                return
            while backlog:
                item = backlog.popleft()
                if type(item) is _PeerEnded:
                    self._end(item.code)
                    continue
                waiting = feed(item)  # type: ignore[arg-type]
                if waiting is not None:
                    self._held = waiting.__await__()
                    self._step_held()
                    return
                if not closing and inbox is not None and len(inbox) >= inbox.capacity:
                    break
            if not backlog:
                break
        self._holding = False
        self._parked = False
        if self._paused:
            self._paused = False
            if not self.disconnected:
                self._socket.resume_reading()

    def wait(self, waiter: Any) -> asyncio.Future[None]:
        """The puller's wait: frames are pushed to the handler, so it waits on its own future."""
        return waiter.future  # type: ignore[no-any-return]

    # -- fragmented messages, bad input, the client's close ------------------------------

    def _begin_fragments(self, frame: WSFrame, kind: WSMsgType) -> None:
        if self._discarding:
            return
        if self._fragments is not None:
            self._fail(CloseCode.PROTOCOL_ERROR, "a new message began inside a fragmented one")
            return
        self._fragment_kind = kind
        self._fragment_size = 0
        self._fragments = []
        self._continue_fragments(frame)

    def _continue_fragments(self, frame: WSFrame) -> Frame | None:
        """Add a fragment; the whole message once the last one arrived."""
        if self._discarding:
            return None
        fragments = self._fragments
        if fragments is None:
            self._fail(CloseCode.PROTOCOL_ERROR, "a continuation frame without a message")
            return None
        self._fragment_size += frame.payload_size
        limit = self._route.options.max_message_size
        if self._fragment_size > limit:
            self._fragments = None
            self._too_big(self._fragment_size, limit)
            return None
        fragments.append(frame.get_payload_as_bytes())
        if not frame.fin:
            return None
        self._fragments = None
        message = b"".join(fragments)
        if self._fragment_kind is _BINARY:
            return message
        try:
            return message.decode()
        except UnicodeDecodeError:
            self._invalid_text(message)
            return None

    def _invalid_text(self, payload: bytes) -> None:
        connection = self._connection
        assert connection is not None
        connection.report(InvalidMessage(payload, "a text message is not valid UTF-8"))
        self._fail(CloseCode.INVALID_FRAME_PAYLOAD_DATA, "a text message is not valid UTF-8")

    def _too_big(self, size: int, limit: int) -> None:
        connection = self._connection
        assert connection is not None
        connection._log.warning("message of %d bytes is over max_message_size %d", size, limit)
        error = MessageTooBig(f"message of {size} bytes is over max_message_size {limit}")
        connection.report(error)
        self._fail(CloseCode.MESSAGE_TOO_BIG, None)

    def _fail(self, code: int, why: str | None) -> None:
        """Close with ``code`` and read nothing more from the client but its close."""
        connection = self._connection
        assert connection is not None
        if why is not None:
            connection._log.warning("%s: closing with %d", why, code)
        self._fragments = None
        self._holding = True
        self._discarding = True
        self._parked = False
        self._backlog = None
        connection.disconnect(code)
        if self._paused and not self.disconnected:
            self._paused = False
            self._socket.resume_reading()

    def _peer_closing(self, frame: WSFrame) -> None:
        """The client's close frame: answer it, close the socket, end after the backlog."""
        code = int(frame.get_close_code().value) or CloseCode.NO_STATUS_RCVD
        self._peer_code = code
        ws = self._ws
        if not ws.is_close_frame_sent:
            reply = CloseCode.NORMAL_CLOSURE if code == CloseCode.NO_STATUS_RCVD else code
            ws.send_close(WSCloseCode(reply))
        ws.disconnect()
        self._peer_ended(code)

    def _peer_ended(self, code: int) -> None:
        if not self._discarding and (self._held is not None or self._backlog):
            self._hold_back(_PeerEnded(code))
        else:
            self._end(code)

    def _end(self, code: int) -> None:
        connection = self._connection
        assert connection is not None
        connection.peer_closed(code)

    def _close_code_sent_by_picows(self, connection: Connection) -> int:
        """1006, unless picows closed for its own reason (an oversized frame, no pong)."""
        handshake = self._ws.close_handshake
        sent = handshake.sent if handshake is not None else None
        if sent is None or connection.closed:
            return CloseCode.ABNORMAL_CLOSURE
        code = int(sent.code.value)
        if code == CloseCode.MESSAGE_TOO_BIG:
            limit = self._server._max_frame_size
            connection._log.warning("a frame over max_message_size %d", limit)
            connection.report(MessageTooBig(f"a frame is over max_message_size {limit}"))
        elif code == CloseCode.GOING_AWAY:  # no pong in time: the peer is gone
            return CloseCode.ABNORMAL_CLOSURE
        return code

    # -- the handler -------------------------------------------------------------------

    def _handler_finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            _logger.error("connection failed", exc_info=task.exception())
        ws = self._ws
        if not self.disconnected and not ws.is_close_frame_sent:
            # The engine gave the connection up without a close (a write failed or
            # timed out): the socket cannot be flushed, so it is dropped.
            ws.disconnect(False)
        self._server._session_over(self)

    def shut_down(self, code: int) -> None:
        """Close this connection for the server's shutdown."""
        connection = self._connection
        if connection is not None:
            connection.disconnect(code)

    def abort(self) -> None:
        """Close the socket at once (the shutdown's last resort)."""
        if self._ws is not None and not self.disconnected:
            self._ws.disconnect(False)

    @property
    def over(self) -> bool:
        task = self._task
        return self.disconnected and (task is None or task.done())


def _not_connected(kind: WSMsgType, frame: Frame) -> None:
    raise ConnectionError("not connected yet")


def _not_connected_feed(frame: Frame) -> None:
    raise ConnectionError("not connected yet")


class PicowsServer:
    """A running :func:`serve_picows` server; an async context manager that closes it.

    ``close()`` stops accepting connections and closes every open one with
    1001 (going away); ``await wait_closed()`` returns once every handler has
    returned and every socket is closed.
    """

    def __init__(
        self,
        endpoints: list[_Endpoint],
        max_frame_size: int,
        shutdown_timeout: float,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._endpoints = endpoints
        self._max_frame_size = max_frame_size
        self._shutdown_timeout = shutdown_timeout
        self._sessions: set[_Session] = set()
        self._server: asyncio.Server | None = None
        self._closing = False
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._idle: asyncio.Future[None] | None = None
        self._shutdown: asyncio.Task[None] | None = None
        self._port = 0

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening sockets."""
        return tuple(self._server.sockets) if self._server is not None else ()

    @property
    def port(self) -> int:
        """The port listened on (useful with ``port=0``)."""
        return self._port

    @property
    def connections(self) -> int:
        """Connections open now (handler running or socket open)."""
        return len(self._sessions)

    def close(self) -> None:
        """Stop accepting; close every connection with 1001. Idempotent."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.shut_down(CloseCode.GOING_AWAY)
        self._shutdown = self._loop.create_task(self._shut_down())

    async def wait_closed(self) -> None:
        """Wait until the server was closed and every connection is over."""
        await asyncio.shield(self._closed)

    async def __aenter__(self) -> PicowsServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    async def _shut_down(self) -> None:
        try:
            if not await self._all_over(self._shutdown_timeout):
                _logger.warning(
                    "%d connections still open %s s after the shutdown began: closing them",
                    len(self._sessions),
                    self._shutdown_timeout,
                )
                for session in list(self._sessions):
                    session.abort()
                    task = session._task
                    if task is not None:
                        task.cancel()
                if not await self._all_over(_CLOSE_TIMEOUT):
                    _logger.error("%d handlers did not end", len(self._sessions))
        finally:
            self._closed.set_result(None)

    async def _all_over(self, seconds: float) -> bool:
        if not self._sessions:
            return True
        self._idle = idle = self._loop.create_future()
        try:
            async with asyncio.timeout(seconds):
                await idle
        except TimeoutError:
            return False
        finally:
            self._idle = None
        return True

    def _session_over(self, session: _Session) -> None:
        if session.over:
            self._sessions.discard(session)
            idle = self._idle
            if not self._sessions and idle is not None and not idle.done():
                idle.set_result(None)

    def _listener(self, request: WSUpgradeRequest) -> Any:
        """picows' listener factory: route, check the origin, or refuse."""
        if self._closing:
            return _refuse(503, b"Server shutting down")
        path = unquote(request.path.decode("latin-1").split("?", 1)[0])
        for endpoint in self._endpoints:
            match = endpoint.matcher.match(path)
            if match is None:
                continue
            route = endpoint.route
            options = route.options
            headers = request.headers
            origin = headers.get("Origin")
            host = headers.get("Host")
            if not origin_allowed(
                options.allowed_origin, origin, host, require_origin=options.require_origin
            ):
                if not options.skip_logging and options.log_level >= 1:
                    options.logger.warning("origin %r not allowed on %s", origin, path)
                return _refuse(403, b"Origin not allowed")
            arguments = dict(endpoint.defaults)
            convertors = endpoint.convertors
            for name, value in match.groupdict().items():
                arguments[name] = convertors[name].convert(value)
            return _Session(self, route, arguments)
        return _refuse(404, b"Not Found")


def _refuse(status: int, body: bytes) -> WSUpgradeResponseWithListener:
    response = WSUpgradeResponse.create_error_response(
        status, body, {"Content-Type": "text/plain; charset=utf-8"}
    )
    return WSUpgradeResponseWithListener(response, None)


def _endpoint(template: str, handler: Any) -> _Endpoint:
    route = route_of(handler)
    matcher, _, convertors = compile_path(template)
    where = f"{route.handler.__qualname__} at {template!r}"
    if route.websocket_parameter is not None:
        raise TypeError(f"{where}: a starlette WebSocket parameter cannot be served by picows")
    defaults: list[tuple[str, Any]] = []
    for parameter in route.framework_parameters:
        if parameter.name in convertors:
            continue
        if parameter.default is inspect.Parameter.empty:
            raise TypeError(
                f"{where}: parameter {parameter.name!r} is not a view and the path does not "
                f"give it; add {{{parameter.name}}} to the path or give it a default"
            )
        defaults.append((parameter.name, parameter.default))
    return _Endpoint(template, matcher, convertors, route, tuple(defaults))


def _server_options(options: Options | None, routes: Iterable[Route]) -> tuple[Any, ...]:
    """(ping_period, pong_wait, max_frame_size): ``options``, or the most lenient of the routes."""
    if options is not None:
        return options.ping_period, options.pong_wait, options.max_message_size
    every = [route.options for route in routes] or [Options()]
    pings = [o.ping_period for o in every if o.ping_period is not None]
    pongs = [o.pong_wait for o in every]
    ping = min(pings) if pings else None
    pong = None if None in pongs or not pongs else max(p for p in pongs if p is not None)
    return ping, pong, max(o.max_message_size for o in every)


def _keepalive(ping_period: float | None, pong_wait: float | None) -> dict[str, Any]:
    """picows' auto-ping settings: a peer silent for ``pong_wait`` seconds is dropped.

    picows pings after ``auto_ping_idle_timeout`` seconds without data and drops
    the peer when no pong came ``auto_ping_reply_timeout`` later, which may not
    exceed the idle timeout; a ping period shorter than half of ``pong_wait`` is
    therefore stretched to half of it, so the peer is still dropped after
    ``pong_wait`` and not sooner.
    """
    if ping_period is None or pong_wait is None:
        return {"enable_auto_ping": False}
    idle = max(ping_period, pong_wait / 2)
    return {
        "enable_auto_ping": True,
        "auto_ping_idle_timeout": idle,
        "auto_ping_reply_timeout": pong_wait - idle,
    }


async def serve_picows(
    routes: Mapping[str, Callable[..., Awaitable[None]]],
    host: str = "127.0.0.1",
    port: int = 8000,
    options: Options | None = None,
    *,
    shutdown_timeout: float = 10.0,
    **settings: Any,
) -> PicowsServer:
    """Serve decorated handlers on picows; returns once listening.

    Args:
        routes: path template (Starlette syntax, ``/rooms/{name}``) → a handler
            decorated by a binding. Path parameters are passed to the handler's
            parameters of the same name.
        host: interface to listen on.
        port: TCP port (0 picks a free one: see :attr:`PicowsServer.port`).
        options: the server's keepalive (``ping_period``, ``pong_wait``) and
            frame-size limit (``max_message_size``); by default the most lenient
            of the routes' options. Everything else comes from each route's binding.
        shutdown_timeout: seconds ``close()`` lets handlers end before their
            sockets are closed and their tasks cancelled.
        settings: other ``picows.ws_create_server`` settings, e.g. ``backlog``.

    Raises:
        TypeError: a handler is not decorated, takes a Starlette ``WebSocket``,
            or needs a parameter its path does not give.
    """
    endpoints = [_endpoint(template, handler) for template, handler in routes.items()]
    ping_period, pong_wait, max_frame_size = _server_options(
        options, (endpoint.route for endpoint in endpoints)
    )
    server = PicowsServer(endpoints, max_frame_size, shutdown_timeout)
    picows_settings: dict[str, Any] = {
        **_keepalive(ping_period, pong_wait),
        "enable_auto_pong": True,
        "max_frame_size": max_frame_size,
        # picows grows its read buffer as messages need; starting at 4 KiB instead of
        # 16 KiB saves 12 kB per connection at no cost in throughput.
        "read_buffer_init_size": 4096,
    }
    picows_settings.update(settings)
    listening = await ws_create_server(server._listener, host, port, **picows_settings)
    server._server = listening
    server._port = int(listening.sockets[0].getsockname()[1])
    return server


def run_picows(
    routes: Mapping[str, Callable[..., Awaitable[None]]],
    host: str = "127.0.0.1",
    port: int = 8000,
    options: Options | None = None,
    **settings: Any,
) -> None:
    """Serve ``routes`` with :func:`serve_picows` until SIGINT or SIGTERM; uvloop when installed."""

    async def main() -> None:
        server = await serve_picows(routes, host, port, options, **settings)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, server.close)
        _logger.info("serving on ws://%s:%d", host, server.port)
        await server.wait_closed()

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
