"""The README's examples run as written."""

import asyncio
import re
import types
from pathlib import Path

import msgspec
from websockets.asyncio.client import connect

from tests.conftest import Server, serve
from tests.servers import on_aiohttp_app
from wschannels.servers.picows import serve_picows
from wschannels.servers.websockets import serve_websockets

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


async def test_the_opening_example_echoes_through_fastapi() -> None:
    module = types.ModuleType("readme_example")
    exec(compile(python_blocks()[0], "README.md", "exec"), module.__dict__)
    async with serve(module.app) as server, connect(
        server.ws + "/echo/bob", origin=server.origin, compression=None
    ) as ws:
        await ws.send('{"text": "not json')
        await ws.send(msgspec.json.encode({"text": "hi"}).decode())
        reply = await asyncio.wait_for(ws.recv(), 10)
    assert msgspec.json.decode(reply) == {"text": "bob: hi"}


async def test_the_four_ways_to_serve_one_handler_each_serve_it() -> None:
    module = types.ModuleType("readme_servers")
    exec(compile(python_blocks()[1], "README.md", "exec"), module.__dict__)
    picows = await serve_picows(module.routes, "127.0.0.1", 0)
    websockets = await serve_websockets(module.routes, "127.0.0.1", 0)
    async with (
        serve(module.starlette_app) as on_uvicorn,
        picows,
        websockets,
        on_aiohttp_app(module.aiohttp_app) as on_aiohttp,
    ):
        for server in (on_uvicorn, Server(picows.port), Server(websockets.port), on_aiohttp):
            async with connect(
                server.ws + "/rooms/lobby", origin=server.origin, compression=None
            ) as ws:
                await ws.send("hi")
                assert await asyncio.wait_for(ws.recv(), 10) == "lobby: hi"
