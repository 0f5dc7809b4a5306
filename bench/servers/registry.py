"""Every server wschannels runs on, each beside that server's own hand-written raw echo.

One list for the conformance run, the hostile-input, fault and load tests and the reliability
benchmarks: a server is added here once and every one of them covers it. A server whose
adapter or library cannot be imported is left out with the reason (`unavailable()`), so the
`websockets` and aiohttp entries start counting as soon as `wschannels.serve_websockets` and
`wschannels.aiohttp_route` exist.

Each entry can serve decorated handlers in this process (`serve`, for tests that watch the
handler) or run until SIGTERM the way a user runs it (`run`, through `wschannels.run`,
`run_picows`, ...), and serve its raw echo either way. As a command::

    python -m bench.servers.registry uvicorn --port 8001            # wschannels raw() echo
    python -m bench.servers.registry picows --raw --port 8002       # picows' own echo
    python -m bench.servers.registry picows --routes MODULE:NAME --port 8003
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import wschannels
from bench.harness import raise_open_files_limit
from wschannels import Receiver, Sender

Routes = Mapping[str, Callable[..., Awaitable[None]]]
Serve = Callable[[Routes, "wschannels.Options | None"], contextlib.AbstractAsyncContextManager[int]]

# Autobahn's limits cases (9.x) send messages of up to 16 MiB; an echo for it must take them.
CONFORMANCE_MAX_SIZE = 16 * 1024 * 1024
# Autobahn and raw-socket clients send no Origin header, or one of their own.
ANY_ORIGIN = ".*"


def conformance_options() -> wschannels.Options:
    """What the conformance echo runs with: any origin, Autobahn's largest message."""
    return wschannels.Options(
        allowed_origin=ANY_ORIGIN, max_message_size=CONFORMANCE_MAX_SIZE, skip_logging=True
    )


@wschannels.raw(conformance_options())
async def raw_echo(receiver: Receiver[str | bytes], sender: Sender[str | bytes]) -> None:
    """The `raw()` echo Autobahn is run against: every frame back as it came."""
    async for message in receiver:
        await sender.send(message)


ECHO_ROUTES: Routes = {"/": raw_echo}


@dataclass(frozen=True)
class ServerKind:
    """One server wschannels runs on, and how to start it and its raw echo."""

    name: str
    # What it is, for tables: "wschannels on uvicorn (Starlette route)".
    label: str
    raw_label: str
    serve: Serve
    serve_raw: Callable[[], contextlib.AbstractAsyncContextManager[int]]
    run: Callable[[Routes, int], None]
    run_raw: Callable[[int], None]
    # Whether it negotiates permessage-deflate (Autobahn 12.x/13.x apply).
    compression: bool
    # The close code a client sees when the server process gets SIGTERM.
    shutdown_code: int


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# uvicorn ---------------------------------------------------------------------------------


def _starlette(routes: Routes) -> Any:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute

    return Starlette(routes=[WebSocketRoute(path, handler) for path, handler in routes.items()])


def _starlette_raw_echo() -> Any:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    await ws.send_text(message["text"])
                else:
                    await ws.send_bytes(message["bytes"])
        except WebSocketDisconnect:
            pass

    return Starlette(routes=[WebSocketRoute("/", echo)])


_UVICORN_SETTINGS: dict[str, Any] = {"log_level": "warning", "lifespan": "off"}


@contextlib.asynccontextmanager
async def _uvicorn(app: Any, options: wschannels.Options | None) -> AsyncIterator[int]:
    import uvicorn

    port = free_port()
    config = wschannels.uvicorn_config(app, options, host="127.0.0.1", port=port,
                                       **_UVICORN_SETTINGS)  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 10)


def _uvicorn_serve(routes: Routes, options: wschannels.Options | None) -> Any:
    return _uvicorn(_starlette(routes), options)


def _uvicorn_serve_raw() -> Any:
    return _uvicorn(_starlette_raw_echo(), conformance_options())


def _uvicorn_run(routes: Routes, port: int) -> None:
    wschannels.run(_starlette(routes), conformance_options(), port=port, backlog=4096,
                   **_UVICORN_SETTINGS)  # fmt: skip


def _uvicorn_run_raw(port: int) -> None:
    wschannels.run(_starlette_raw_echo(), conformance_options(), port=port, backlog=4096,
                   **_UVICORN_SETTINGS)  # fmt: skip


UVICORN = ServerKind(
    name="uvicorn",
    label="wschannels, Starlette route on uvicorn (websockets-sansio)",
    raw_label="raw Starlette echo on uvicorn (websockets-sansio)",
    serve=_uvicorn_serve,
    serve_raw=_uvicorn_serve_raw,
    run=_uvicorn_run,
    run_raw=_uvicorn_run_raw,
    compression=True,
    shutdown_code=1001,  # run() drains its sessions before uvicorn's own shutdown (1012)
)


# picows ----------------------------------------------------------------------------------


def _picows_raw_listener() -> Callable[[Any], Any]:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport

    class Echo(WSListener):  # type: ignore[misc]
        """Every frame back as it came (fin bit kept), the close code echoed."""

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
                transport.send(frame.msg_type, frame.get_payload_as_bytes(), frame.fin)

    return lambda request: Echo()


@contextlib.asynccontextmanager
async def _picows_serve(routes: Routes, options: wschannels.Options | None) -> AsyncIterator[int]:
    from wschannels.servers.picows import serve_picows

    async with await serve_picows(routes, "127.0.0.1", 0, options) as server:
        yield server.port


@contextlib.asynccontextmanager
async def _picows_serve_raw(port: int = 0) -> AsyncIterator[int]:
    from picows import ws_create_server

    server = await ws_create_server(_picows_raw_listener(), "127.0.0.1", port,
                                    max_frame_size=CONFORMANCE_MAX_SIZE)  # fmt: skip
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def _picows_run(routes: Routes, port: int) -> None:
    run = wschannels.run_picows  # type: ignore[attr-defined]
    run(routes, "127.0.0.1", port, conformance_options(), backlog=4096)


def _picows_run_raw(port: int) -> None:
    async def main() -> None:
        async with _picows_serve_raw(port):
            await asyncio.Event().wait()

    asyncio.run(main())


PICOWS = ServerKind(
    name="picows",
    label="wschannels on picows (serve_picows)",
    raw_label="raw picows echo (frames echoed as they come)",
    serve=_picows_serve,
    serve_raw=_picows_serve_raw,
    run=_picows_run,
    run_raw=_picows_run_raw,
    compression=False,
    shutdown_code=1001,
)


# websockets (wschannels.serve_websockets, from the servers issue) ---------------------------


async def _websockets_raw_handler(ws: Any) -> None:
    from websockets.exceptions import ConnectionClosed

    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            await ws.send(message)


@contextlib.asynccontextmanager
async def _websockets_serve(
    routes: Routes, options: wschannels.Options | None
) -> AsyncIterator[int]:
    serve = wschannels.serve_websockets  # type: ignore[attr-defined]
    async with await serve(routes, "127.0.0.1", 0, options) as server:
        yield int(server.port)


@contextlib.asynccontextmanager
async def _websockets_serve_raw(port: int = 0) -> AsyncIterator[int]:
    from websockets.asyncio.server import serve

    async with serve(_websockets_raw_handler, "127.0.0.1", port,
                     max_size=CONFORMANCE_MAX_SIZE) as server:  # fmt: skip
        yield int(next(iter(server.sockets)).getsockname()[1])


def _websockets_run(routes: Routes, port: int) -> None:
    wschannels.run_websockets(routes, "127.0.0.1", port, conformance_options())  # type: ignore[attr-defined]


def _websockets_run_raw(port: int) -> None:
    async def main() -> None:
        async with _websockets_serve_raw(port):
            await asyncio.Event().wait()

    asyncio.run(main())


WEBSOCKETS = ServerKind(
    name="websockets",
    label="wschannels on the websockets library's server (serve_websockets)",
    raw_label="raw websockets echo (websockets.asyncio.server.serve)",
    serve=_websockets_serve,
    serve_raw=_websockets_serve_raw,
    run=_websockets_run,
    run_raw=_websockets_run_raw,
    compression=True,
    shutdown_code=1001,
)


# aiohttp (wschannels.aiohttp_route, from the servers issue) ---------------------------------


def _aiohttp_app(routes: Routes | None) -> Any:
    from aiohttp import WSMsgType, web

    app = web.Application()
    if routes is None:

        async def echo(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(max_msg_size=CONFORMANCE_MAX_SIZE, compress=True)
            await ws.prepare(request)
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await ws.send_str(message.data)
                elif message.type == WSMsgType.BINARY:
                    await ws.send_bytes(message.data)
            return ws

        app.router.add_get("/", echo)
    else:
        for path, handler in routes.items():
            app.router.add_get(path, wschannels.aiohttp_route(handler))  # type: ignore[attr-defined]
        wschannels.aiohttp_setup(app)  # type: ignore[attr-defined]
    return app


@contextlib.asynccontextmanager
async def _aiohttp_serve_app(app: Any, port: int = 0) -> AsyncIterator[int]:
    from aiohttp import web

    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port or free_port())
    await site.start()
    try:
        yield int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


def _aiohttp_serve(routes: Routes, options: wschannels.Options | None) -> Any:
    return _aiohttp_serve_app(_aiohttp_app(routes))


def _aiohttp_serve_raw() -> Any:
    return _aiohttp_serve_app(_aiohttp_app(None))


def _aiohttp_run(routes: Routes, port: int) -> None:
    from aiohttp import web

    web.run_app(_aiohttp_app(routes), host="127.0.0.1", port=port, print=None)


def _aiohttp_run_raw(port: int) -> None:
    from aiohttp import web

    web.run_app(_aiohttp_app(None), host="127.0.0.1", port=port, print=None)


AIOHTTP = ServerKind(
    name="aiohttp",
    label="wschannels on aiohttp (aiohttp_route)",
    raw_label="raw aiohttp echo (web.WebSocketResponse)",
    serve=_aiohttp_serve,
    serve_raw=_aiohttp_serve_raw,
    run=_aiohttp_run,
    run_raw=_aiohttp_run_raw,
    compression=True,
    shutdown_code=1001,
)


# The registry ----------------------------------------------------------------------------

ALL: tuple[ServerKind, ...] = (UVICORN, PICOWS, WEBSOCKETS, AIOHTTP)

# What each server needs importable: (module, attribute or None).
_NEEDS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "uvicorn": (("uvicorn", None), ("starlette", None)),
    "picows": (("picows", None), ("wschannels.servers.picows", "serve_picows")),
    "websockets": (("websockets", None), ("wschannels", "serve_websockets")),
    "aiohttp": (("aiohttp", None), ("wschannels", "aiohttp_route")),
}


def why_unavailable(kind: ServerKind) -> str | None:
    """Why ``kind`` cannot run here (an import that fails), or None when it can."""
    for module, attribute in _NEEDS[kind.name]:
        try:
            imported = importlib.import_module(module)
        except ImportError as error:
            return f"{kind.name}: cannot import {module} ({error})"
        if attribute is not None and not hasattr(imported, attribute):
            return f"{kind.name}: {module}.{attribute} does not exist yet"
    return None


def available() -> list[ServerKind]:
    """The servers that can run here, in registry order."""
    return [kind for kind in ALL if why_unavailable(kind) is None]


def unavailable() -> dict[str, str]:
    """Server name → why it is left out."""
    reasons = {kind.name: why_unavailable(kind) for kind in ALL}
    return {name: why for name, why in reasons.items() if why is not None}


def by_name(name: str) -> ServerKind:
    for kind in ALL:
        if kind.name == name:
            return kind
    raise KeyError(f"no server {name!r}; choose from {[k.name for k in ALL]}")


def load_routes(spec: str) -> Routes:
    """``module:attribute`` → the routes mapping it names."""
    module, _, attribute = spec.partition(":")
    routes: Routes = getattr(importlib.import_module(module), attribute)
    return routes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("server", choices=[kind.name for kind in ALL])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--raw", action="store_true", help="the server's own echo instead")
    parser.add_argument("--routes", default=None, help="MODULE:NAME of a routes mapping")
    args = parser.parse_args(argv)
    raise_open_files_limit()
    kind = by_name(args.server)
    why = why_unavailable(kind)
    if why is not None:
        raise SystemExit(why)
    if args.raw:
        kind.run_raw(args.port)
    else:
        kind.run(load_routes(args.routes) if args.routes else ECHO_ROUTES, args.port)


if __name__ == "__main__":
    main()
