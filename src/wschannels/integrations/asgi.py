"""``asgi(handler)``: a decorated handler as a bare ASGI application."""

from __future__ import annotations

import inspect
from typing import Any

from ..bindings import route_of

__all__ = ["asgi"]

ASGIApp = Any


def asgi(handler: Any) -> ASGIApp:
    """Turn a decorated handler into an ASGI app, to mount in any framework or serve as is.

    A plain HTTP request gets ``405 Method Not Allowed`` (with ``Allow: GET``)
    when its method is not GET, and ``400 Bad Request`` when it is a GET
    without a WebSocket upgrade, as in the seed. Handler parameters other than
    the views (and a ``WebSocket``) are taken from ``scope["path_params"]``
    when a router set them, else from their defaults.

    Raises:
        TypeError: ``handler`` is not decorated, or has a parameter that a bare
            ASGI app cannot supply (no default).
    """
    route = route_of(handler)
    defaults: dict[str, Any] = {}
    for parameter in route.framework_parameters:
        if parameter.default is inspect.Parameter.empty:
            raise TypeError(
                f"{route.handler.__qualname__}: parameter {parameter.name!r} has no default, "
                "and a bare ASGI app cannot supply it; give it a default, or serve the "
                "handler through a Starlette WebSocketRoute or FastAPI route with that "
                "path parameter"
            )
        defaults[parameter.name] = parameter.default
    names = tuple(defaults)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "websocket":
            arguments = dict(defaults)
            path_parameters = scope.get("path_params")
            if path_parameters:
                for name in names:
                    if name in path_parameters:
                        arguments[name] = path_parameters[name]
            await route.serve(scope, receive, send, arguments)
        elif kind == "http":
            await _refuse_http(scope, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    app.__wschannels_route__ = route  # type: ignore[attr-defined]
    return app


async def _refuse_http(scope: Any, send: Any) -> None:
    if scope.get("method") != "GET":
        status, body = 405, b"Method Not Allowed"
        headers = [(b"allow", b"GET")]
    else:
        status, body = 400, b"Bad Request: expected a WebSocket upgrade"
        headers = []
    headers += [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
