"""The four bindings, named after the seed's middlewares, and what a decorated handler is.

``@json(Model)``, ``@messages()``, ``@bytes_messages()`` and ``@raw()`` read
the handler's annotations once, when it is decorated: a view whose item type
disagrees with the binding is a ``TypeError`` then, not when a client
connects. The decorated handler is still an ``async def`` that Starlette
(``WebSocketRoute``) and FastAPI (``@app.websocket``) call with a
``WebSocket``; FastAPI resolves its other parameters as usual.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.websockets import WebSocket

from .codecs import BytesCodec, Codec, JsonCodec, RawCodec, TextCodec
from .connection import Connection
from .options import Options
from .origin import origin_allowed
from .refusals import refused_on_purpose
from .transports.asgi import AsgiReader, AsgiTransport
from .views import Disconnect, Done, Errors, Receiver, Sender

__all__ = ["BoundHandler", "bytes_messages", "json", "messages", "raw", "route_of"]

Handler = Callable[..., Awaitable[None]]
BoundHandler = Callable[..., Awaitable[None]]
H = TypeVar("H", bound=Handler)

_VIEWS: dict[Any, str] = {
    Receiver: "receiver",
    Sender: "sender",
    Done: "done",
    Disconnect: "disconnect",
    Errors: "errors",
}


@dataclass(frozen=True, slots=True)
class Route:
    """A handler with its binding: what to inject, and what the framework supplies."""

    handler: Handler
    codec: Codec
    options: Options
    injected: tuple[tuple[str, str], ...]  # (parameter, view kind)
    websocket_parameter: str | None  # a parameter annotated with starlette's WebSocket
    framework_parameters: tuple[inspect.Parameter, ...]

    @property
    def wants_receiver(self) -> bool:
        return any(kind == "receiver" for _, kind in self.injected)

    async def serve(self, scope: Any, receive: Any, send: Any, arguments: dict[str, Any]) -> None:
        """Run one WebSocket session: origin check, accept, the handler, the close."""
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        origin, host = _origin_and_host(scope["headers"])
        options = self.options
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "unknown"
        if not origin_allowed(
            options.allowed_origin, origin, host, require_origin=options.require_origin
        ):
            if not options.skip_logging and options.log_level >= 1:
                options.logger.warning("[%s] origin %r not allowed", peer, origin)
            await _deny(scope, send, 403, b"Origin not allowed")
            return
        await send({"type": "websocket.accept"})
        transport = AsgiTransport(send)
        connection = Connection(
            self.codec, options, transport, peer, wants_receiver=self.wants_receiver
        )
        connection._log_connected()
        for name, kind in self.injected:
            arguments[name] = _view(connection, kind)
        if self.websocket_parameter is not None and self.websocket_parameter not in arguments:
            arguments[self.websocket_parameter] = WebSocket(scope, receive, send)
        reader = AsgiReader(receive, connection)
        connection.attach_puller(reader)
        reader.start()
        try:
            await connection.run(self.handler(**arguments))
        finally:
            reader.close()


def _view(connection: Connection, kind: str) -> Any:
    if kind == "receiver":
        return Receiver(connection.receiver_channel, connection.done)
    if kind == "sender":
        return Sender(connection)
    if kind == "done":
        return connection.done
    if kind == "disconnect":
        return Disconnect(connection)
    return Errors(connection.errors_channel, connection.done)


def _origin_and_host(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    origin = host = None
    for name, value in headers:
        if name == b"origin":
            origin = value.decode("latin-1")
        elif name == b"host":
            host = value.decode("latin-1")
    return origin, host


async def _deny(scope: Any, send: Any, status: int, body: bytes) -> None:
    """Refuse the handshake with an HTTP status where the server allows it, else close."""
    if "websocket.http.response" in scope.get("extensions", {}):
        refused_on_purpose()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


def route_of(endpoint: Any) -> Route:
    """The :class:`Route` behind a decorated handler.

    Raises:
        TypeError: ``endpoint`` was not decorated by a wschannels binding.
    """
    route = getattr(endpoint, "__wschannels_route__", None)
    if not isinstance(route, Route):
        raise TypeError(
            f"{endpoint!r} is not a wschannels handler: decorate it with "
            "@wschannels.json(Model), @wschannels.messages(), "
            "@wschannels.bytes_messages() or @wschannels.raw()"
        )
    return route


def _bind(codec: Codec, options: Options | None, binding: str) -> Callable[[H], H]:
    if options is not None and not isinstance(options, Options):
        raise TypeError(f"{binding}() takes a wschannels.Options, got {options!r}")
    resolved = options if options is not None else Options()

    def decorate(handler: H) -> H:
        route = _analyse(handler, codec, resolved, binding)
        return typing.cast(H, _endpoint(route))

    return decorate


def _analyse(handler: Handler, codec: Codec, options: Options, binding: str) -> Route:
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"{binding}() decorates an async def handler, got {handler!r}")
    try:
        hints = typing.get_type_hints(handler, include_extras=True)
    except Exception as error:
        raise TypeError(
            f"cannot resolve the annotations of {handler.__qualname__}: {error}"
        ) from None
    injected: list[tuple[str, str]] = []
    websocket_parameter = None
    framework: list[inspect.Parameter] = []
    for parameter in inspect.signature(handler).parameters.values():
        hint = hints.get(parameter.name, parameter.annotation)
        origin = typing.get_origin(hint) or hint
        if origin is typing.Annotated:  # framework metadata (Depends, Query): not a view
            origin = None
        kind = _VIEWS.get(origin)
        if kind is not None:
            if kind in ("receiver", "sender"):
                _check_item_type(handler, parameter.name, hint, codec, binding)
            injected.append((parameter.name, kind))
        elif hint is WebSocket:
            websocket_parameter = parameter.name
        else:
            framework.append(parameter.replace(annotation=hint))
    return Route(handler, codec, options, tuple(injected), websocket_parameter, tuple(framework))


def _check_item_type(handler: Handler, name: str, hint: Any, codec: Codec, binding: str) -> None:
    arguments = typing.get_args(hint)
    if not arguments:
        return
    item = arguments[0] if len(arguments) == 1 else typing.Union[arguments]  # noqa: UP007
    if not codec.accepts(item):
        raise TypeError(
            f"{handler.__qualname__}: parameter {name!r} is {_name(hint)}, but the binding "
            f"{binding}() carries {_name(codec.item_type)} items"
        )


def _name(annotation: Any) -> str:
    arguments = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if arguments and origin is not None and origin is not typing.Union:
        return f"{_name(origin)}[{', '.join(map(_name, arguments))}]"
    return getattr(annotation, "__name__", None) or repr(annotation)


def _endpoint(route: Route) -> BoundHandler:
    """The function Starlette and FastAPI call with a WebSocket (and FastAPI with more)."""
    websocket_name = route.websocket_parameter or "websocket"
    framework_names = tuple(parameter.name for parameter in route.framework_parameters)

    @functools.wraps(route.handler)
    async def endpoint(*args: Any, **kwargs: Any) -> None:
        websocket = args[0] if args else kwargs.pop(websocket_name)
        if route.websocket_parameter is not None:
            kwargs[route.websocket_parameter] = websocket
        missing = [name for name in framework_names if name not in kwargs]
        if missing:  # called by Starlette: path parameters by name
            path_parameters = websocket.path_params
            for name in missing:
                if name in path_parameters:
                    kwargs[name] = path_parameters[name]
        await route.serve(websocket.scope, websocket._receive, websocket._send, kwargs)

    websocket_parameter = inspect.Parameter(
        websocket_name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=WebSocket
    )
    parameters = [websocket_parameter, *route.framework_parameters]
    if route.websocket_parameter is not None:
        parameters = list(route.framework_parameters)
        original = inspect.signature(route.handler).parameters[route.websocket_parameter]
        parameters.insert(0, original.replace(annotation=WebSocket))
    parameters.sort(key=lambda parameter: parameter.kind)
    endpoint.__signature__ = inspect.Signature(parameters, return_annotation=None)  # type: ignore[attr-defined]
    del endpoint.__wrapped__
    endpoint.__wschannels_route__ = route  # type: ignore[attr-defined]
    return endpoint


def json(model: Any, options: Options | None = None) -> Callable[[H], H]:
    """Bind a handler to JSON messages decoded into ``model`` (the seed's ``sockets.JSON``).

    ``model`` may be a dataclass, a ``msgspec.Struct``, a ``TypedDict``, a
    pydantic model, or ``dict`` / ``list`` / ``Any``.

    Raises:
        TypeError: ``model`` cannot be decoded into, or a handler's
            ``Receiver[...]``/``Sender[...]`` names another type.
    """
    return _bind(JsonCodec(model), options, "json")


def messages(options: Options | None = None) -> Callable[[H], H]:
    """Bind a handler to text messages as ``str`` (the seed's ``sockets.Messages``)."""
    return _bind(TextCodec(), options, "messages")


def bytes_messages(options: Options | None = None) -> Callable[[H], H]:
    """Bind a handler to binary messages as ``bytes`` (the seed's ``sockets.ByteSliceMessages``)."""
    return _bind(BytesCodec(), options, "bytes_messages")


def raw(options: Options | None = None) -> Callable[[H], H]:
    """Bind a handler to ``str`` for text frames and ``bytes`` for binary ones, both ways."""
    return _bind(RawCodec(), options, "raw")
