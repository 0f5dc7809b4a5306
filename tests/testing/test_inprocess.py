"""``wschannels.testing.connect`` in-process: a handler, a Starlette or FastAPI app, no port."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

import wschannels
from wschannels import CloseCode, Disconnect, Done, Receiver, Sender
from wschannels.testing import Closed, ReceiveTimeout, Refused, connect


class Message(msgspec.Struct):
    text: str


@wschannels.json(Message)
async def shout(name: str, receiver: Receiver[Message], sender: Sender[Message]) -> None:
    async for message in receiver:
        await sender.send(Message(f"{name}: {message.text.upper()}"))


@wschannels.messages()
async def twice_then_bye(sender: Sender[str], disconnect: Disconnect) -> None:
    await sender.send("one")
    await sender.send("two")
    await disconnect.send(CloseCode.GOING_AWAY)


async def test_a_decorated_handler_runs_in_process_on_the_in_memory_transport() -> None:
    async with connect(shout, params={"name": "ada"}) as client:
        await client.send({"text": "hi"})
        assert await client.receive_json() == {"text": "ada: HI"}


async def test_a_starlette_app_runs_in_process_with_its_routing_and_path_parameters() -> None:
    app = Starlette(routes=[WebSocketRoute("/shout/{name}", shout)])
    async with connect(app, "/shout/bob") as client:
        await client.send({"text": "hey"})
        assert await client.receive_json(Message) == Message("bob: HEY")


async def test_a_fastapi_app_runs_in_process() -> None:
    app = FastAPI()
    app.websocket("/shout/{name}")(shout)
    async with connect(app, "/shout/cy") as client:
        await client.send({"text": "yo"})
        assert await client.receive_json() == {"text": "cy: YO"}


async def test_the_close_code_and_everything_sent_before_it_reach_the_client() -> None:
    for target, path in ((twice_then_bye, None), (wschannels.asgi(twice_then_bye), "/")):
        client = await connect(target, path)
        assert [await client.receive(), await client.receive()] == ["one", "two"]
        assert await client.wait_closed() == CloseCode.GOING_AWAY
        with pytest.raises(Closed):
            await client.receive()


async def test_a_refused_origin_is_a_refused_handshake_in_process_too() -> None:
    app = Starlette(routes=[WebSocketRoute("/shout/{name}", shout)])
    with pytest.raises(Refused) as refused:
        await connect(app, "/shout/eve", origin="https://evil.example")
    assert refused.value.status == 403
    with pytest.raises(Refused) as refused:
        await connect(shout, params={"name": "eve"}, origin="https://evil.example")
    assert refused.value.status == 403


async def test_a_receive_that_gets_nothing_times_out_showing_what_came_before() -> None:
    @wschannels.messages()
    async def once(sender: Sender[str], done: Done) -> None:
        await sender.send("only this")
        await done.recv()

    async with connect(once, timeout=0.2) as client:
        assert await client.receive() == "only this"
        with pytest.raises(ReceiveTimeout, match="only this"):
            await client.receive()


async def test_rooms_of_a_hub_work_in_process() -> None:
    hub = wschannels.Hub()

    @wschannels.messages()
    async def room(receiver: Receiver[str], sender: Sender[str]) -> None:
        await hub.join("lobby", sender)
        async for text in receiver:
            await hub.publish("lobby", text)

    async with hub, connect(room) as alice, connect(room) as bob:
        await asyncio.sleep(0)
        await alice.send("hello")
        assert await bob.receive() == "hello"
        assert await alice.receive() == "hello"
