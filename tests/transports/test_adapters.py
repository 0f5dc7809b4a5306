"""What the aiohttp and `websockets` adapters add of their own: routing, arguments, start-up checks.

The behaviour shared by every server is tested once for all of them (tests/core,
tests/transports/test_keepalive.py, test_drain.py, test_protocol_violations.py).
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

import wschannels
from tests.servers import FRAME_SERVERS, SERVERS, on_aiohttp_app
from wschannels import Options, Sender


@wschannels.messages()
async def hello(sender: Sender[str]) -> None:
    await sender.send("hello")


@pytest.mark.parametrize("name", FRAME_SERVERS)
async def test_an_unknown_path_gets_404(name: str) -> None:
    async with SERVERS[name](routes={"/here": hello}) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.ws + "/elsewhere", origin=server.origin):
                pass
        assert refused.value.response.status_code == 404
        async with connect(server.ws + "/here", origin=server.origin) as ws:
            assert await ws.recv() == "hello"


@pytest.mark.parametrize("name", FRAME_SERVERS)
async def test_path_parameters_are_passed_by_name(name: str) -> None:
    @wschannels.messages()
    async def room(name: str, sender: Sender[str], greeting: str = "hi") -> None:
        await sender.send(f"{greeting} {name}")

    async with (
        SERVERS[name](routes={"/rooms/{name}": room}) as server,
        connect(server.ws + "/rooms/lobby", origin=server.origin) as ws,
    ):
        assert await asyncio.wait_for(ws.recv(), 10) == "hi lobby"


async def test_an_aiohttp_handler_can_take_the_request() -> None:
    @wschannels.messages()
    async def who(request: web.Request, sender: Sender[str]) -> None:
        await sender.send(request.query.get("user", "nobody"))

    app = web.Application()
    app.router.add_get("/", wschannels.aiohttp_route(who))
    wschannels.aiohttp_setup(app)
    async with (
        on_aiohttp_app(app) as server,
        connect(server.ws + "/?user=ann", origin=server.origin) as ws,
    ):
        assert await asyncio.wait_for(ws.recv(), 10) == "ann"


async def test_an_aiohttp_route_that_cannot_fill_a_parameter_fails_at_start_up() -> None:
    @wschannels.messages()
    async def room(name: str, sender: Sender[str]) -> None:
        pass

    app = web.Application()
    app.router.add_get("/rooms", wschannels.aiohttp_route(room))
    wschannels.aiohttp_setup(app)
    runner = web.AppRunner(app)
    with pytest.raises(TypeError, match="'name'"):
        await runner.setup()
    await runner.cleanup()


async def test_an_aiohttp_route_works_without_setup() -> None:
    app = web.Application()
    app.router.add_get("/", wschannels.aiohttp_route(hello))
    async with (
        on_aiohttp_app(app) as server,
        connect(server.ws + "/", origin=server.origin) as ws,
    ):
        assert await asyncio.wait_for(ws.recv(), 10) == "hello"


def test_an_undecorated_handler_is_refused_by_aiohttp_route() -> None:
    async def plain(sender: Sender[str]) -> None:
        pass

    with pytest.raises(TypeError, match="not a wschannels handler"):
        wschannels.aiohttp_route(plain)


async def test_serve_websockets_logs_its_start_up_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wschannels")
    async with await wschannels.serve_websockets({"/": hello}, "127.0.0.1", 0) as server:
        pass
    assert f"serving on ws://127.0.0.1:{server.port} (websockets)" in caplog.text


async def test_a_websockets_connection_gets_its_own_routes_message_size_limit() -> None:
    @wschannels.messages(Options(max_message_size=10, skip_logging=True))
    async def small(sender: Sender[str], done: wschannels.Done) -> None:
        await done.recv()

    @wschannels.messages(Options(max_message_size=1000))
    async def large(receiver: wschannels.Receiver[str], sender: Sender[str]) -> None:
        async for text in receiver:
            await sender.send(str(len(text)))

    routes = {"/small": small, "/large": large}
    async with await wschannels.serve_websockets(routes, "127.0.0.1", 0) as server:
        url, origin = f"ws://127.0.0.1:{server.port}", f"http://127.0.0.1:{server.port}"
        async with connect(url + "/large", origin=origin) as ws:
            await ws.send("x" * 500)
            assert await asyncio.wait_for(ws.recv(), 10) == "500"
        async with connect(url + "/small", origin=origin) as ws:
            await ws.send("x" * 500)
            await asyncio.wait_for(ws.wait_closed(), 10)
            assert ws.close_code == wschannels.CloseCode.MESSAGE_TOO_BIG
