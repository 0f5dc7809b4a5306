"""The README's examples run as written: every python block is run here, and checked."""

from __future__ import annotations

import asyncio
import re
import types
from pathlib import Path
from typing import Any

import msgspec
import pytest
from websockets.asyncio.client import connect

from tests.conftest import Server, serve
from tests.servers import on_aiohttp_app
from wschannels import testing
from wschannels.servers.picows import serve_picows
from wschannels.servers.websockets import serve_websockets

README = Path(__file__).resolve().parent.parent / "README.md"
WAIT = 10.0


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def run_block(index: int, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(python_blocks()[index], f"README.md block {index}", "exec"), module.__dict__)
    return module


def test_every_python_block_is_checked_here() -> None:
    assert len(python_blocks()) == 6, "a new README block needs its own test in this file"


async def test_the_first_example_echoes_to_a_client_that_sends_no_origin() -> None:
    """As written, called as the README says: the ``websockets`` client sends no Origin."""
    echo = run_block(0, "echo")
    async with serve(echo.app) as server, connect(
        server.ws + "/echo/bob", compression=None, open_timeout=WAIT
    ) as ws:
        await ws.send('{"text": "not json')
        await ws.send(msgspec.json.encode({"text": "hi"}).decode())
        reply = await asyncio.wait_for(ws.recv(), WAIT)
    assert msgspec.json.decode(reply) == {"text": "bob: hi"}


async def test_the_five_line_client_talks_to_the_first_example() -> None:
    echo = run_block(0, "echo")
    printed: list[Any] = []
    async with serve(echo.app) as server:
        source = python_blocks()[1].replace("ws://127.0.0.1:8000", server.ws)
        assert source != python_blocks()[1], "the client's URL is the one the README gives"
        namespace = {"print": lambda *values: printed.append(values)}
        await asyncio.to_thread(exec, compile(source, "README.md block 1", "exec"), namespace)
    assert len(printed) == 1
    assert msgspec.json.decode(printed[0][0]) == {"text": "bob: hello"}


async def test_the_hub_example_is_a_complete_app_with_rooms() -> None:
    rooms = run_block(2, "rooms")
    async with serve(rooms.app, lifespan="on") as server:
        url = server.ws + "/rooms/lobby"
        async with connect(url, compression=None) as alice, connect(
            url, compression=None
        ) as bob, connect(server.ws + "/rooms/other", compression=None) as carol:
            for _ in range(100):  # both joined once the hub counts them
                if rooms.hub.local_count("lobby") == 2 and rooms.hub.local_count("other") == 1:
                    break
                await asyncio.sleep(0.02)
            await alice.send('{"text": "hello, lobby"}')
            heard = await asyncio.wait_for(bob.recv(), WAIT)
            await carol.send('{"text": "only here"}')
            await bob.send('{"text": "hi alice"}')
            alice_heard = await asyncio.wait_for(alice.recv(), WAIT)
    assert msgspec.json.decode(heard) == {"text": "hello, lobby"}
    assert msgspec.json.decode(alice_heard) == {"text": "hi alice"}  # not her own, not carol's


async def test_the_recovery_example_replays_exactly_what_a_returning_member_missed() -> None:
    history = run_block(3, "recovery")
    async with history.hub:
        async with testing.connect(history.app, "/rooms/lobby/ada") as ada:
            for text in ("one", "two", "three"):
                await ada.send({"text": text})
            lines = [await ada.receive_json() for _ in range(3)]
        assert [line["text"] for line in lines] == ["one", "two", "three"]
        since = lines[0]["pos"]
        async with testing.connect(history.app, f"/rooms/lobby/bob?since={since}") as bob:
            missed = [await bob.receive_json() for _ in range(2)]
            assert [line["text"] for line in missed] == ["two", "three"]
            await bob.send({"text": "four"})
            assert (await bob.receive_json())["text"] == "four"  # then live, no duplicate
        async with testing.connect(history.app, "/rooms/lobby/cy?since=1.another-epoch") as cy:
            assert await cy.wait_closed() == 4002  # cannot recover: another epoch


async def test_the_testing_example_passes_and_would_catch_a_wrong_reply() -> None:
    await run_block(4, "testing_example").test_upper()

    wrong = types.ModuleType("wrong_example")
    source = python_blocks()[4].replace("message.upper()", "message.lower()")
    exec(compile(source, "README.md block 4, broken", "exec"), wrong.__dict__)
    with pytest.raises(AssertionError):
        await wrong.test_upper()


async def test_the_four_ways_to_serve_one_handler_each_serve_it() -> None:
    module = run_block(5, "four_ways")
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
                assert await asyncio.wait_for(ws.recv(), WAIT) == "lobby: hi"
