"""The ASGI adapter: handlers under any ASGI server (uvicorn, hypercorn, daphne, granian).

Three ways in, one session: a decorated handler is a Starlette/FastAPI
WebSocket endpoint as it is (:func:`starlette_endpoint`, applied by every
binding), and :func:`asgi` makes it a bare ASGI application.

ASGI's ``receive`` and ``send`` are coroutines, but on a connection with data
waiting (``receive``) or a writable socket (``send``) they finish without ever
suspending. They are run that far synchronously (:mod:`.stepping`): a write
costs no task, and reading needs no task of its own, since a ``receive`` that
has to wait is resumed from its future's callback. Measured with the echo benchmark
(``python -m bench --scenarios echo``), a reader task instead costs one task
switch per message, and a task per write one more.

ASGI hides ping and pong: keepalive and the frame-size limit are the
server's (see :mod:`wschannels.servers.uvicorn` for uvicorn's settings).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from starlette.websockets import WebSocket

from ..codecs import Frame
from ..engine import Connection
from ..handler import HandlerSpec, spec_of
from ..session import (
    NOT_AN_UPGRADE,
    SHUTTING_DOWN,
    Refusal,
    check_origin,
    open_connection,
    serve,
)
from .drain import Drain
from .refusals import refused_on_purpose
from .stepping import Steppable, begin, finish, step

__all__ = ["AsgiTransport", "asgi", "serve_asgi", "sessions_drained_by", "starlette_endpoint"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AsgiTransport:
    """The engine's transport over an ASGI ``receive``/``send`` pair, with no task of its own."""

    __slots__ = ("_closed", "_connection", "_loop", "_paused", "_reading", "_receive", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._connection: Connection | None = None
        self._reading: Steppable | None = None  # the receive() in flight
        self._paused = False
        self._closed = False

    def start(self, connection: Connection) -> None:
        """Begin reading into ``connection``."""
        self._connection = connection
        self._read()

    def stop(self) -> None:
        """Stop reading; a receive() in flight is abandoned, its event left with the server."""
        self._closed = True
        reading, self._reading = self._reading, None
        if reading is not None:
            reading.close()

    # -- reading --------------------------------------------------------------------

    def _read(self) -> None:
        """Take every event the server has now; leave a callback for the next one."""
        connection = self._connection
        assert connection is not None
        while not self._closed:
            reading = self._reading
            if reading is None:
                if self._paused:  # a read in flight still completes: its event is taken
                    return
                reading = self._reading = begin(self._receive())
            try:  # step() inlined: this runs once or twice per message
                waited = reading.send(None)
            except StopIteration as stop:
                result = stop.value
            except Exception as error:
                self._reading = None
                self._closed = True
                connection.log.info("reading failed: %r", error)
                connection.peer_closed(1006)
                return
            else:
                if waited is None:
                    self._loop.call_soon(self._ready, None)
                else:
                    waited._asyncio_future_blocking = False  # see step()
                    waited.add_done_callback(self._ready)
                return
            self._reading = None
            kind = result["type"]
            if kind == "websocket.receive":
                frame = result.get("text")
                connection.feed(frame if frame is not None else result.get("bytes") or b"")
            elif kind == "websocket.disconnect":
                self._closed = True
                connection.peer_closed(result.get("code", 1005))

    def _ready(self, _: object) -> None:
        if self._reading is not None and not self._closed:
            self._read()

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            # Not from inside the engine call that resumed: on the next loop turn.
            if self._reading is None:
                self._loop.call_soon(self._resume)

    def _resume(self) -> None:
        if not self._paused and self._reading is None and not self._closed:
            self._read()

    # -- writing --------------------------------------------------------------------

    def write(self, frame: Frame) -> Awaitable[None] | None:
        if type(frame) is str:
            steps = begin(self._send({"type": "websocket.send", "text": frame}))
        else:
            steps = begin(self._send({"type": "websocket.send", "bytes": frame}))
        try:  # step() inlined: once per message
            waited = steps.send(None)
        except StopIteration:
            return None
        if waited is not None:
            waited._asyncio_future_blocking = False
        return self._loop.create_task(finish(steps, waited))

    def close(self, code: int) -> None:
        steps = begin(self._send({"type": "websocket.close", "code": code}))
        done, waited = step(steps)
        if not done:
            self._loop.create_task(finish(steps, waited))

    def abort(self) -> None:
        """ASGI has no abort: stop reading; the server drops the socket when the app returns."""
        self._closed = True

    def ping(self, on_pong: Callable[[], None]) -> None:
        raise NotImplementedError("under ASGI the server pings (see wschannels.run)")


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"


def _origin_and_host(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    origin = host = None
    for name, value in headers:
        if name == b"origin":
            origin = value.decode("latin-1")
        elif name == b"host":
            host = value.decode("latin-1")
    return origin, host


# The sessions of the ASGI server that ``wschannels.run()`` started in this process: its
# shutdown drains them (1001 after what is queued) before uvicorn's own. None otherwise.
_process_drain: Drain | None = None


@contextlib.contextmanager
def sessions_drained_by(drain: Drain) -> Iterator[None]:
    """Run every ASGI session of this process inside ``drain`` while the block runs."""
    global _process_drain
    previous, _process_drain = _process_drain, drain
    try:
        yield
    finally:
        _process_drain = previous


async def serve_asgi(
    spec: HandlerSpec, scope: Scope, receive: Receive, send: Send, arguments: dict[str, Any]
) -> None:
    """One WebSocket session under ASGI: the handshake, then the session pipeline."""
    event = await receive()
    if event["type"] != "websocket.connect":
        return
    drain = _process_drain
    origin, host = _origin_and_host(scope["headers"])
    peer = _peer(scope)
    refusal = SHUTTING_DOWN if drain is not None and drain.closing else None
    refusal = refusal or check_origin(spec, origin, host, peer)
    if refusal is not None:
        await _refuse(scope, send, refusal)
        return
    await send({"type": "websocket.accept"})
    transport = AsgiTransport(receive, send)
    connection = open_connection(spec, transport, peer)
    transport.start(connection)
    try:
        if drain is None:
            await serve(spec, connection, arguments)
        else:
            with drain.session(connection):
                await serve(spec, connection, arguments)
    finally:
        transport.stop()


async def _refuse(scope: Scope, send: Send, refusal: Refusal) -> None:
    """Refuse the handshake with an HTTP status where the server allows it, else close."""
    if "websocket.http.response" in scope.get("extensions", {}):
        refused_on_purpose()  # keeps uvicorn from logging the refusal as an app error
        await send(
            {
                "type": "websocket.http.response.start",
                "status": refusal.status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": refusal.body})
    else:
        await send({"type": "websocket.close", "code": 1008})


def starlette_endpoint(spec: HandlerSpec) -> Callable[..., Awaitable[None]]:
    """The function Starlette (``WebSocketRoute``) and FastAPI (``@app.websocket``) call.

    It takes a ``WebSocket`` first, then the handler's other parameters, so
    FastAPI resolves them (path, query, ``Depends``) as for any endpoint;
    under Starlette, path parameters are passed by name.
    """
    websocket_parameter = spec.parameter_annotated(WebSocket)
    websocket_name = websocket_parameter or "websocket"
    others = tuple(p for p in spec.parameters if p.name != websocket_parameter)
    other_names = tuple(parameter.name for parameter in others)

    @functools.wraps(spec.handler)
    async def endpoint(*args: Any, **kwargs: Any) -> None:
        websocket: WebSocket = args[0] if args else kwargs.pop(websocket_name)
        if websocket_parameter is not None:
            kwargs[websocket_parameter] = websocket
        missing = [name for name in other_names if name not in kwargs]
        if missing:  # called by Starlette: path parameters by name
            path_parameters = websocket.path_params
            for name in missing:
                if name in path_parameters:
                    kwargs[name] = path_parameters[name]
        # Starlette's WebSocket keeps the ASGI pair it was made with; the session
        # drives them directly (its receive()/send() wrappers add a state check per call).
        await serve_asgi(spec, websocket.scope, websocket._receive, websocket._send, kwargs)

    first = inspect.Parameter(
        websocket_name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=WebSocket
    )
    if websocket_parameter is not None:
        original = inspect.signature(spec.handler).parameters[websocket_parameter]
        first = original.replace(annotation=WebSocket)
    parameters = sorted([first, *others], key=lambda parameter: parameter.kind)
    endpoint.__signature__ = inspect.Signature(parameters, return_annotation=None)  # type: ignore[attr-defined]
    del endpoint.__wrapped__
    endpoint.__wschannels_spec__ = spec  # type: ignore[attr-defined]
    return endpoint


def asgi(handler: Any) -> ASGIApp:
    """Turn a decorated handler into an ASGI app, to mount in any framework or serve as is.

    A plain HTTP request gets ``405 Method Not Allowed`` (with ``Allow: GET``)
    when its method is not GET, and ``400 Bad Request`` when it is a GET
    without a WebSocket upgrade. Handler parameters other than the views (and
    a ``WebSocket``) are taken from ``scope["path_params"]`` when a router
    set them, else from their defaults.

    Raises:
        TypeError: ``handler`` is not decorated, or has a parameter that a bare
            ASGI app cannot supply (no default).
    """
    spec = spec_of(handler)
    defaults: dict[str, Any] = {}
    websocket_parameter = spec.parameter_annotated(WebSocket)
    for parameter in spec.parameters:
        if parameter.name == websocket_parameter:
            continue
        if parameter.default is inspect.Parameter.empty:
            raise TypeError(
                f"{spec.name}: parameter {parameter.name!r} has no default, "
                "and a bare ASGI app cannot supply it; give it a default, or serve the "
                "handler through a Starlette WebSocketRoute or FastAPI route with that "
                "path parameter"
            )
        defaults[parameter.name] = parameter.default
    names = tuple(defaults)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            arguments = dict(defaults)
            path_parameters = scope.get("path_params")
            if path_parameters:
                for name in names:
                    if name in path_parameters:
                        arguments[name] = path_parameters[name]
            if websocket_parameter is not None:
                arguments[websocket_parameter] = WebSocket(scope, receive, send)
            await serve_asgi(spec, scope, receive, send, arguments)
        elif kind == "http":
            await _refuse_http(scope, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    app.__wschannels_spec__ = spec  # type: ignore[attr-defined]
    return app


async def _refuse_http(scope: Scope, send: Send) -> None:
    if scope.get("method") != "GET":
        status, body = 405, b"Method Not Allowed"
        headers = [(b"allow", b"GET")]
    else:
        status, body = NOT_AN_UPGRADE.status, NOT_AN_UPGRADE.body
        headers = []
    headers += [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
