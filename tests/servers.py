"""One handler on each of the four servers, for the tests that must hold on all of them.

``async with SERVERS[name](handler) as server:`` serves ``handler`` at ``/``
(or ``routes``, path template → handler) on a real server on a free port of
127.0.0.1: under uvicorn the handler as an ASGI app (routes: a Starlette app), ``serve_picows``,
``serve_websockets``, or an aiohttp application set up with
``aiohttp_setup`` under an ``AppRunner``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiohttp import web
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

import wschannels
from tests.conftest import Server, serve
from wschannels.servers.picows import serve_picows
from wschannels.servers.websockets import serve_websockets

Serving = Callable[..., AbstractAsyncContextManager[Server]]


def _routes(handler: Any, routes: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return routes if routes is not None else {"/": handler}


@contextlib.asynccontextmanager
async def on_uvicorn(
    handler: Any = None,
    options: wschannels.Options | None = None,
    *,
    routes: Mapping[str, Any] | None = None,
    **uvicorn_settings: Any,
) -> AsyncIterator[Server]:
    # One handler: the bare ASGI app (it answers a plain request as the seed did);
    # routes: a Starlette application.
    app: Any = wschannels.asgi(handler)
    if routes is not None:
        app = Starlette(routes=[WebSocketRoute(path, each) for path, each in routes.items()])
    async with serve(app, options, **uvicorn_settings) as server:
        yield server


@contextlib.asynccontextmanager
async def on_picows(
    handler: Any = None,
    options: wschannels.Options | None = None,
    *,
    routes: Mapping[str, Any] | None = None,
    **uvicorn_settings: Any,
) -> AsyncIterator[Server]:
    async with await serve_picows(_routes(handler, routes), "127.0.0.1", 0) as server:
        yield Server(server.port)


@contextlib.asynccontextmanager
async def on_websockets(
    handler: Any = None,
    options: wschannels.Options | None = None,
    *,
    routes: Mapping[str, Any] | None = None,
    **uvicorn_settings: Any,
) -> AsyncIterator[Server]:
    async with await serve_websockets(_routes(handler, routes), "127.0.0.1", 0) as server:
        yield Server(server.port)


@contextlib.asynccontextmanager
async def on_aiohttp(
    handler: Any = None,
    options: wschannels.Options | None = None,
    *,
    routes: Mapping[str, Any] | None = None,
    **uvicorn_settings: Any,
) -> AsyncIterator[Server]:
    app = web.Application()
    for path, each in _routes(handler, routes).items():
        app.router.add_get(path, wschannels.aiohttp_route(each))
    wschannels.aiohttp_setup(app)
    async with on_aiohttp_app(app) as server:
        yield server


@contextlib.asynccontextmanager
async def on_aiohttp_app(app: web.Application) -> AsyncIterator[Server]:
    """Run an aiohttp application on a free port; its shutdown runs at the end of the block."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Server(runner.addresses[0][1])
    finally:
        await runner.cleanup()


SERVERS: dict[str, Serving] = {
    "uvicorn": on_uvicorn,
    "picows": on_picows,
    "websockets": on_websockets,
    "aiohttp": on_aiohttp,
}
FRAME_SERVERS = ("picows", "websockets", "aiohttp")
"""The servers that expose ping and pong: the engine keeps their connections alive."""



def name_of(serving: Serving) -> str:
    """The server's name in SERVERS: for the few answers that differ by server."""
    return next(name for name, each in SERVERS.items() if each is serving)
