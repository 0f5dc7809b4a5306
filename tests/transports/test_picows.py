"""The picows transport, end to end: a real picows server, real websockets clients.

The lifecycle guarantees shared with uvicorn run on both in tests/core/test_lifecycle.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import wschannels
from wschannels import (
    CloseCode,
    Done,
    Errors,
    Options,
    Receiver,
    Sender,
    select,
)
from wschannels.servers.picows import PicowsServer, serve_picows


class Message(msgspec.Struct):
    text: str
    seq: int


@contextlib.asynccontextmanager
async def serving(
    routes: dict[str, Any], options: Options | None = None, **settings: Any
) -> AsyncIterator[PicowsServer]:
    server = await serve_picows(routes, "127.0.0.1", 0, options, **settings)
    async with server:
        yield server


def client(server: PicowsServer, path: str = "/", **kwargs: Any) -> Any:
    kwargs.setdefault("origin", f"http://127.0.0.1:{server.port}")
    return connect(f"ws://127.0.0.1:{server.port}{path}", compression=None, **kwargs)


async def close_code_of(ws: ClientConnection) -> int | None:
    """Read until the server closes; the close code the client saw."""
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    return ws.close_code


async def eventually(condition: Any, seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.005)


@wschannels.messages()
async def echo_text(receiver: Receiver[str], sender: Sender[str], done: Done) -> None:
    while True:
        chosen, value, _ = await select(receiver, done)
        if chosen is done:
            return
        await sender.send(value)


@wschannels.bytes_messages()
async def echo_bytes(receiver: Receiver[bytes], sender: Sender[bytes], done: Done) -> None:
    async for value in receiver:
        await sender.send(value[::-1])


@wschannels.json(Message)
async def echo_json(receiver: Receiver[Message], sender: Sender[Message]) -> None:
    async for message in receiver:
        await sender.send(Message(message.text.upper(), message.seq + 1))


@wschannels.raw()
async def echo_raw(receiver: Receiver[str | bytes], sender: Sender[str | bytes]) -> None:
    async for value in receiver:
        await sender.send(value)


ECHOES = {"/text": echo_text, "/bytes": echo_bytes, "/json": echo_json, "/raw": echo_raw}


async def test_text_binary_json_and_raw_messages_are_echoed() -> None:
    async with serving(ECHOES) as server:
        async with client(server, "/text") as ws:
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
        async with client(server, "/bytes") as ws:
            await ws.send(b"\x00\x01\xff")
            assert await ws.recv() == b"\xff\x01\x00"
        async with client(server, "/json") as ws:
            await ws.send('{"text": "hi", "seq": 1}')
            assert msgspec.json.decode(await ws.recv()) == {"text": "HI", "seq": 2}
        async with client(server, "/raw") as ws:
            await ws.send("text")
            await ws.send(b"bytes")
            assert [await ws.recv(), await ws.recv()] == ["text", b"bytes"]


async def test_a_fragmented_message_arrives_whole() -> None:
    async with serving(ECHOES) as server:
        async with client(server, "/text") as ws:
            await ws.send(["frag", "men", "ted ✓"])
            assert await ws.recv() == "fragmented ✓"
        async with client(server, "/bytes") as ws:
            await ws.send([b"ab", b"cd"])
            assert await ws.recv() == b"dcba"


async def test_a_burst_of_replies_of_every_size_arrives_in_order() -> None:
    sizes = [5, 125, 126, 1000, 65535, 65536, 200_000]

    @wschannels.raw(Options(max_message_size=1_000_000))
    async def burst(receiver: Receiver[str | bytes], sender: Sender[str | bytes]) -> None:
        async for _ in receiver:
            for size in sizes:  # written in one loop turn: framed and sent together
                await sender.send("t" * size)
                await sender.send(b"b" * size)

    async with serving({"/": burst}) as server, client(server, max_size=None) as ws:
        await ws.send("go")
        for size in sizes:
            assert await asyncio.wait_for(ws.recv(), 10) == "t" * size
            assert await asyncio.wait_for(ws.recv(), 10) == b"b" * size


async def test_what_a_handler_sends_goes_out_while_it_waits_on_something_else() -> None:
    release = asyncio.Event()

    @wschannels.messages()
    async def announce(sender: Sender[str]) -> None:
        for index in range(3):
            await sender.send(f"m{index}")
        await release.wait()  # not the receiver: the end of the loop turn sends the burst

    async with serving({"/": announce}) as server, client(server) as ws:
        assert [await asyncio.wait_for(ws.recv(), 10) for _ in range(3)] == ["m0", "m1", "m2"]
        release.set()
        assert await close_code_of(ws) == CloseCode.NORMAL_CLOSURE


async def test_path_parameters_are_passed_by_name_converted_and_defaults_kept() -> None:
    @wschannels.messages()
    async def room(name: str, client_id: int, sender: Sender[str], greeting: str = "hello") -> None:
        await sender.send(f"{greeting} {client_id!r} in {name}")

    async with serving({"/rooms/{name}/{client_id:int}": room}) as server:
        async with client(server, "/rooms/lob%20by/42") as ws:
            assert await ws.recv() == "hello 42 in lob by"
        async with client(server, "/rooms/lobby/42?x=1") as ws:
            assert await ws.recv() == "hello 42 in lobby"


async def test_a_route_missing_a_parameter_fails_at_start_up() -> None:
    @wschannels.messages()
    async def room(name: str, sender: Sender[str]) -> None:
        pass

    with pytest.raises(TypeError, match="'name'"):
        await serve_picows({"/rooms": room}, "127.0.0.1", 0)


async def test_an_undecorated_handler_fails_at_start_up() -> None:
    async def plain(sender: Any) -> None:
        pass

    with pytest.raises(TypeError, match="not a wschannels handler"):
        await serve_picows({"/": plain}, "127.0.0.1", 0)


async def test_an_unknown_path_is_refused_with_404() -> None:
    async with serving(ECHOES) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with client(server, "/nowhere"):
                pass
        assert refused.value.response.status_code == 404


async def test_a_foreign_origin_is_refused_with_403() -> None:
    async with serving(ECHOES) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with client(server, "/text", origin="http://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        assert refused.value.response.body == b"Origin not allowed"


async def test_an_origin_pattern_from_the_options_is_applied() -> None:
    @wschannels.messages(Options(allowed_origin=r"https://app\.example"))
    async def hello(sender: Sender[str]) -> None:
        await sender.send("hi")

    async with serving({"/": hello}) as server:
        async with client(server, origin="https://app.example") as ws:
            assert await ws.recv() == "hi"
        with pytest.raises(InvalidStatus):
            async with client(server):
                pass


async def test_a_missing_origin_is_admitted_unless_the_options_require_one() -> None:
    @wschannels.messages()
    async def hello(sender: Sender[str]) -> None:
        await sender.send("hi")

    @wschannels.messages(Options(require_origin=True))
    async def strict(sender: Sender[str]) -> None:
        await sender.send("hi")

    async with serving({"/": hello, "/strict": strict}) as server:
        async with client(server, origin=None) as ws:
            assert await ws.recv() == "hi"
        with pytest.raises(InvalidStatus) as refused:
            async with client(server, "/strict", origin=None):
                pass
        assert refused.value.response.status_code == 403
        async with client(server, "/strict") as ws:
            assert await ws.recv() == "hi"


def too_big_route(seen: list[Exception], finished: asyncio.Event) -> Any:
    @wschannels.messages(Options(max_message_size=1000, skip_logging=True))
    async def small(receiver: Receiver[str], errors: Errors, done: Done) -> None:
        while True:
            chosen, value, _ = await select(receiver, errors, done)
            if chosen is done:
                finished.set()
                return
            if chosen is errors:
                seen.append(value)

    return small


@pytest.mark.parametrize("fragmented", [False, True], ids=["one frame", "fragments"])
async def test_a_message_over_max_message_size_closes_with_1009_and_is_reported(
    fragmented: bool,
) -> None:
    seen: list[Exception] = []
    finished = asyncio.Event()
    async with serving({"/": too_big_route(seen, finished)}) as server, client(server) as ws:
        await ws.send("fits")
        await ws.send(["x" * 600, "x" * 600] if fragmented else "x" * 1001)
        assert await close_code_of(ws) == CloseCode.MESSAGE_TOO_BIG
        async with asyncio.timeout(10):
            await finished.wait()
    assert [type(error) for error in seen] == [wschannels.MessageTooBig]


async def test_a_text_message_that_is_not_utf8_closes_with_1007() -> None:
    async with serving(ECHOES) as server, client(server, "/text") as ws:
        await ws.send(b"\xff\xfe", text=True)
        assert await close_code_of(ws) == CloseCode.INVALID_FRAME_PAYLOAD_DATA


async def test_a_slow_client_makes_writes_wait_then_time_out() -> None:
    seen: list[Exception] = []

    @wschannels.bytes_messages(Options(write_wait=0.5, skip_logging=True))
    async def flood(sender: Sender[bytes], errors: Errors, done: Done) -> None:
        chunk = b"x" * 65536
        while not done.is_set():
            chosen, value, _ = await select(wschannels.Send(sender, chunk), errors, done)
            if chosen is errors:
                seen.append(value)

    # The client reads nothing: the socket's buffers fill, writes wait, write_wait runs out,
    # and the server drops the connection (it cannot send a close frame any more).
    async with serving({"/": flood}) as server, client(server, max_size=None) as ws:
        ws.transport.pause_reading()
        await eventually(lambda: seen, 10)
        assert isinstance(seen[0], wschannels.WriteTimeout)
        await eventually(lambda: server.connections == 0)
        ws.transport.resume_reading()
        assert await close_code_of(ws) == CloseCode.ABNORMAL_CLOSURE


async def test_a_hub_room_across_picows_connections_reaches_every_member() -> None:
    hub = wschannels.Hub()

    @wschannels.messages()
    async def member(room: str, receiver: Receiver[str], sender: Sender[str]) -> None:
        await hub.join(room, sender)
        async for text in receiver:
            await hub.publish(room, text)

    async with hub, serving({"/rooms/{room}": member}) as server:
        async with (
            client(server, "/rooms/lobby") as ada,
            client(server, "/rooms/lobby") as bob,
            client(server, "/rooms/elsewhere") as eve,
        ):
            await eventually(lambda: hub.local_count("lobby") == 2)
            await eventually(lambda: hub.local_count("elsewhere") == 1)
            await ada.send("hello lobby")
            assert await asyncio.wait_for(ada.recv(), 10) == "hello lobby"
            assert await asyncio.wait_for(bob.recv(), 10) == "hello lobby"
            await hub.publish("lobby", "from the server")
            assert await asyncio.wait_for(ada.recv(), 10) == "from the server"
            assert await asyncio.wait_for(bob.recv(), 10) == "from the server"
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(eve.recv(), 0.2)
        await eventually(lambda: hub.local_count("lobby") == 0)


async def test_what_came_before_a_protocol_violation_is_answered_first_and_nothing_after() -> None:
    from websockets.frames import Opcode

    from tests.rawws import RawClient

    async with serving(ECHOES) as server:
        client = await RawClient.connect(server.port, "/text")
        # One write: a message, a frame with a reserved bit, a ping (Autobahn 3.2).
        client.send_text("before")
        client.send_frame(Opcode.TEXT, b"broken", rsv=0b010)
        client.send_frame(Opcode.PING, b"")
        frame = await asyncio.wait_for(client.next_frame(), 10)
        assert frame is not None and frame.data == b"before"
        assert await client.close_code() == CloseCode.PROTOCOL_ERROR
        assert client.pongs == 0  # the ping after the violation was not answered
        await client.aclose()
