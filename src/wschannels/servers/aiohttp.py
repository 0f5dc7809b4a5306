"""The aiohttp adapter: a decorated handler as an aiohttp request handler.

``app.router.add_get("/rooms/{name}", aiohttp_route(room))`` serves ``room``
at that path: aiohttp routes the request (405 for another method, 404 for
an unknown path), this adapter refuses another origin (403), a GET that
is not a WebSocket upgrade (400) and another protocol version than 13
(426: aiohttp takes drafts 7 and 8), then carries the session over aiohttp's
``WebSocketResponse``: one reader task per connection feeds the engine, and
writes go through aiohttp without a task while the socket has room
(:mod:`.stepping`). Path parameters (``request.match_info``) are passed by
name; a parameter annotated ``aiohttp.web.Request`` gets the request.

aiohttp exposes ping and pong, so the engine keeps each connection alive
with the handler's own ``ping_period`` and ``pong_wait``; aiohttp's
heartbeat and automatic pong handling are off (the adapter answers pings).
Each connection's message-size limit is its handler's ``max_message_size``.

:func:`aiohttp_setup` adds what the application needs for a graceful
shutdown (:class:`~wschannels.servers.drain.Drain`) and checks, at start-up,
that every route gives its handler the parameters it needs.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from ..close_codes import CloseCode, answer_to_close
from ..codecs import Frame
from ..engine import Connection
from ..errors import excerpt
from ..handler import HandlerSpec, spec_of
from ..session import (
    NOT_AN_UPGRADE,
    SHUTTING_DOWN,
    Refusal,
    check_origin,
    check_version,
    open_connection,
    serve,
)
from .drain import Drain
from .stepping import run_soon

__all__ = ["aiohttp_route", "aiohttp_setup"]

_DRAIN = web.AppKey("wschannels.drain", Drain)
_SUPPLIED = {web.Request: "the request"}

_DATA = (WSMsgType.TEXT, WSMsgType.BINARY)


class _AiohttpTransport:
    """The engine's transport over one aiohttp ``WebSocketResponse``."""

    __slots__ = ("_closing", "_loop", "_on_pong", "_paused", "_request", "_resumed", "_ws")

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._ws = ws
        self._request = request
        self._loop = asyncio.get_running_loop()
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        self._closing: asyncio.Task[bool] | None = None
        self._on_pong: Callable[[], None] | None = None

    async def read(self, connection: Connection) -> None:
        """Feed every message to the engine, then tell it how the connection ended."""
        ws = self._ws
        while True:
            if self._paused:  # aiohttp's own queue fills, then TCP holds the client
                self._resumed = self._loop.create_future()
                await self._resumed
            message = await ws.receive()
            kind = message.type
            if kind in _DATA:
                connection.feed(message.data)
            elif kind is WSMsgType.PING:
                run_soon(ws.pong(message.data))
            elif kind is WSMsgType.PONG:
                on_pong, self._on_pong = self._on_pong, None
                if on_pong is not None:
                    on_pong()
            elif kind is WSMsgType.CLOSE:  # the client's close: answered here, not by aiohttp
                code, reply = answer_to_close(message.data or None)
                self._closing = self._loop.create_task(ws.close(code=reply, drain=False))
                connection.peer_closed(code)
                return
            else:  # CLOSING (our close is under way), CLOSED, or ERROR
                if kind is WSMsgType.ERROR:
                    self._failed(connection, message.data)
                if self._closing is not None:
                    await asyncio.wait((self._closing,))
                connection.peer_closed(ws.close_code or CloseCode.ABNORMAL_CLOSURE)
                return

    @staticmethod
    def _failed(connection: Connection, error: BaseException) -> None:
        """aiohttp closed on its own: the client broke the protocol or the size limit."""
        if not isinstance(error, WebSocketError) or connection.closed:
            return
        if error.code == WSCloseCode.MESSAGE_TOO_BIG:
            connection.message_too_big(None)
        else:
            connection.protocol_error(error.code, excerpt(str(error)))

    # -- the engine's transport -------------------------------------------------------

    def write(self, frame: Frame) -> Awaitable[None] | None:
        ws = self._ws
        if ws.closed:  # the client's close arrived: the frame cannot reach it
            return None
        if type(frame) is str:
            return run_soon(ws.send_str(frame))
        return run_soon(ws.send_bytes(frame))  # type: ignore[arg-type]

    def close(self, code: int) -> None:
        # aiohttp's close waits for the client's reply under a timeout: a task of its own.
        if self._closing is None and not self._ws.closed:
            self._closing = self._loop.create_task(self._ws.close(code=code))

    def abort(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        resumed, self._resumed = self._resumed, None
        if resumed is not None and not resumed.done():
            resumed.set_result(None)

    def ping(self, on_pong: Callable[[], None]) -> None:
        if self._ws.closed:
            return
        self._on_pong = on_pong
        run_soon(self._ws.ping())


def _refusal(refusal: Refusal) -> web.Response:
    return web.Response(
        status=refusal.status,
        body=refusal.body,
        headers=dict(refusal.headers),
        content_type="text/plain",
        charset="utf-8",
    )


def aiohttp_route(handler: Any) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp request handler serving a decorated handler's WebSocket.

    ``app.router.add_get("/rooms/{name}", wschannels.aiohttp_route(room))``.
    Path parameters are passed by name (as strings), a parameter annotated
    ``aiohttp.web.Request`` gets the request; the others take their default.
    Call :func:`aiohttp_setup` on the application for a graceful shutdown.

    Raises:
        TypeError: ``handler`` is not decorated by a binding.
    """
    spec = spec_of(handler)
    request_parameter = spec.parameter_annotated(web.Request)
    others = tuple(
        (parameter.name, parameter.default)
        for parameter in spec.parameters
        if parameter.name != request_parameter
    )

    async def route(request: web.Request) -> web.StreamResponse:
        drain = request.config_dict.get(_DRAIN)
        if drain is not None and drain.closing:
            return _refusal(SHUTTING_DOWN)
        peername = request.transport.get_extra_info("peername") if request.transport else None
        peer = f"{peername[0]}:{peername[1]}" if peername else "unknown"
        headers = request.headers
        refusal = check_origin(spec, headers.get("Origin"), headers.get("Host"), peer)
        if refusal is not None:
            return _refusal(refusal)
        arguments = _arguments(spec, request, request_parameter, others)
        ws = web.WebSocketResponse(
            autoping=False,  # pongs reach the engine's keepalive; the reader answers pings
            heartbeat=None,  # the engine pings, with the handler's own options
            max_msg_size=spec.options.max_message_size,
            compress=False,
            autoclose=False,  # the reader answers the client's close: aiohttp takes 1006 in it
        )
        if not ws.can_prepare(request).ok:
            return _refusal(NOT_AN_UPGRADE)
        refusal = check_version(  # aiohttp takes versions 7 and 8, and repeated headers
            headers.getall("Sec-WebSocket-Version", []), headers.getall("Sec-WebSocket-Key", [])
        )
        if refusal is not None:
            return _refusal(refusal)
        await ws.prepare(request)
        transport = _AiohttpTransport(ws, request)
        connection = open_connection(spec, transport, peer, keepalive=True)
        reader = asyncio.get_running_loop().create_task(transport.read(connection))
        try:
            if drain is None:
                await serve(spec, connection, arguments)
            else:
                with drain.session(connection):
                    await serve(spec, connection, arguments)
        finally:
            if not reader.done():  # the engine gave the connection up: its socket is gone
                reader.cancel()
        return ws

    route.__wschannels_spec__ = spec  # type: ignore[attr-defined]
    route.__name__ = route.__qualname__ = f"aiohttp_route({spec.name})"
    return route


def _arguments(
    spec: HandlerSpec,
    request: web.Request,
    request_parameter: str | None,
    others: tuple[tuple[str, Any], ...],
) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    if request_parameter is not None:
        arguments[request_parameter] = request
    match_info = request.match_info
    for name, default in others:
        if name in match_info:
            arguments[name] = match_info[name]
        elif default is not inspect.Parameter.empty:
            arguments[name] = default
        else:
            raise TypeError(
                f"{spec.name} at {request.path!r}: the route gives no {name!r}; add "
                f"{{{name}}} to its path or give the parameter a default"
            )
    return arguments


def aiohttp_setup(app: web.Application, *, shutdown_timeout: float = 10.0) -> None:
    """Prepare ``app`` for its wschannels routes; call it before the app starts.

    On shutdown (``web.run_app`` on SIGINT or SIGTERM, or ``AppRunner.cleanup``)
    every connection is closed with 1001 (going away) after the messages
    already queued for it, in batches, and its handler sees ``done``; what is
    still open after ``shutdown_timeout`` seconds is dropped and its handler
    cancelled. A handshake during the shutdown gets 503. At start-up, every
    route made by :func:`aiohttp_route` is checked: a handler parameter that
    neither its path nor a default gives is a ``TypeError`` then.
    """
    drain = Drain(shutdown_timeout)
    app[_DRAIN] = drain

    async def check_routes(app: web.Application) -> None:
        for resource_route in app.router.routes():
            spec = getattr(resource_route.handler, "__wschannels_spec__", None)
            if not isinstance(spec, HandlerSpec) or resource_route.resource is None:
                continue
            path = resource_route.resource.canonical
            names = dict.fromkeys(re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)", path), "")
            spec.path_arguments(names, f"{path!r} on aiohttp", _SUPPLIED)

    async def shut_down(app: web.Application) -> None:
        await drain.drain()

    app.on_startup.append(check_routes)
    app.on_shutdown.append(shut_down)
