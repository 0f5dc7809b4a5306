"""The Go package's own tests, ported one by one, and a test for each of its faults.

Each seed test has a counterpart here (see SPEC.md, "Its own tests"); the
receive and send tests run once per binding: JSON, string and byte slice.
The second half checks that the seed's faults are not repeated.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

import wschannels
from tests.conftest import Server
from tests.servers import Serving, name_of
from wschannels import (
    Channel,
    CloseCode,
    Disconnect,
    Done,
    Errors,
    LogLevel,
    Options,
    Receiver,
    Sender,
    select,
    ticker,
)

WAIT = 10.0  # generous: the machine may be loaded


@dataclass
class Message:
    text: str


Binding = Callable[[Options | None], Callable[[Any], Any]]


def _json(options: Options | None = None) -> Callable[[Any], Any]:
    return wschannels.json(Message, options)


# name -> (binding, the frame on the wire, the item the handler sees)
BINDINGS: dict[str, tuple[Binding, str | bytes, object]] = {
    "json": (_json, '{"text":"Hello World"}', Message("Hello World")),
    "string": (wschannels.messages, "Hello World", "Hello World"),
    "byte-slice": (wschannels.bytes_messages, b"Hello World", b"Hello World"),
}


def client(server: Server, path: str = "/", origin: str | None = None) -> connect:
    """A websockets client for ``server``, from its own origin unless told otherwise."""
    return connect(
        server.ws + path,
        origin=Origin(origin or server.origin),
        compression=None,
        open_timeout=WAIT,
    )


async def read_until_closed(ws: ClientConnection) -> tuple[list[str | bytes], int | None]:
    """Every frame the server sends, then the close code it sent."""
    frames: list[str | bytes] = []
    try:
        async with asyncio.timeout(WAIT):
            async for frame in ws:
                frames.append(frame)
    except ConnectionClosed:
        pass
    return frames, ws.close_code


def upgrade_headers(origin: str, host: str | None = None) -> dict[str, str]:
    """Headers of a WebSocket handshake, sent by hand so that Host can be anything."""
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Origin": origin,
    }
    if host is not None:
        headers["Host"] = host
    return headers


# -- the seed's own tests ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(BINDINGS))
async def test_receive_collects_every_message_the_client_sent_before_done(
    name: str, serving: Serving
) -> None:
    binding, wire, item = BINDINGS[name]
    seen: asyncio.Queue[list[Any]] = asyncio.Queue()

    @binding(None)
    async def handler(receiver: Receiver[Any], done: Done) -> None:
        received: list[Any] = []
        while True:
            chosen, value, _ = await select(receiver, done)
            if chosen is done:
                break
            received.append(value)
        seen.put_nowait(received)

    async with serving(handler) as server:
        async with client(server) as ws:
            for _ in range(4):
                await ws.send(wire)
                await asyncio.sleep(0.001)  # the seed's pace: one message a millisecond
        received = await asyncio.wait_for(seen.get(), WAIT)

    assert received == [item] * 4


@pytest.mark.parametrize("name", list(BINDINGS))
async def test_send_reaches_the_client_and_disconnect_closes_with_going_away(
    name: str, serving: Serving
) -> None:
    binding, wire, item = BINDINGS[name]

    @binding(None)
    async def handler(sender: Sender[Any], done: Done, disconnect: Disconnect) -> None:
        with ticker(0.001) as tick:
            for _ in range(4):
                await tick.recv()
                await sender.send(item)
        await disconnect.send(CloseCode.GOING_AWAY)
        await done.recv()

    async with serving(handler) as server, client(server) as ws:
        frames, code = await read_until_closed(ws)

    assert len(frames) >= 3
    assert frames == [wire] * len(frames)  # same frame type too: str is text, bytes binary
    assert code == CloseCode.GOING_AWAY


def test_options_keep_what_was_set_and_default_the_rest() -> None:
    options = Options(log_level=LogLevel.DEBUG, write_wait=15, ping_period=10)

    assert options.log_level == LogLevel.DEBUG
    assert options.write_wait == 15
    assert options.ping_period == 10
    assert options.max_message_size == 65536
    assert options.send_channel_buffer == 10
    assert options.recv_channel_buffer == 10
    assert options.pong_wait == 60


async def test_allowed_cross_origin_passes_the_origin_check_and_a_plain_get_gets_400(
    serving: Serving,
) -> None:
    options = Options(allowed_origin=r"https?://allowed\.com$")
    ran = asyncio.Event()

    @wschannels.messages(options)
    async def handler(sender: Sender[str]) -> None:
        ran.set()
        await sender.send("welcome")

    async with serving(handler, options) as server:
        async with httpx.AsyncClient(timeout=WAIT) as http:
            plain = await http.get(server.http + "/", headers={"Origin": "http://allowed.com"})
        async with client(server, origin="http://allowed.com") as ws:
            greeting = await asyncio.wait_for(ws.recv(), WAIT)

    # websockets insists on the upgrade: 426 (with "Upgrade: websocket") instead of 400.
    assert plain.status_code == (426 if name_of(serving) == "websockets" else 400)
    assert greeting == "welcome"
    assert ran.is_set()


async def test_disallowed_cross_origin_gets_403_and_the_handler_never_runs(
    serving: Serving,
) -> None:
    ran = asyncio.Event()

    @wschannels.messages()
    async def handler(done: Done) -> None:
        ran.set()
        await done.recv()

    async with serving(handler) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with client(server, origin="http://somewhere.com"):
                pass

    assert refused.value.response.status_code == 403
    assert not ran.is_set()


async def test_disallowed_method_gets_405_allowing_only_get(serving: Serving) -> None:
    @wschannels.messages()
    async def handler(done: Done) -> None:
        await done.recv()

    async with serving(handler) as server, httpx.AsyncClient(timeout=WAIT) as http:
        response = await http.post(server.http + "/", headers={"Origin": server.origin})

    if name_of(serving) == "picows":  # picows routes no methods: its own parser refuses
        assert response.status_code == 400
    else:
        assert response.status_code == 405
        assert response.headers["allow"] in ("GET", "GET,HEAD")  # aiohttp's add_get adds HEAD


# -- the seed's faults, not repeated ------------------------------------------------------


@wschannels.messages()
async def greeter(sender: Sender[str]) -> None:
    await sender.send("welcome")


@pytest.mark.parametrize("host", [".*", "evil.com|", "(.*)"])
async def test_a_host_header_cannot_inject_pattern_syntax_into_the_origin_check(
    host: str, serving: Serving
) -> None:
    async with serving(greeter) as server, httpx.AsyncClient(timeout=WAIT) as http:
        response = await http.get(
            server.http + "/", headers=upgrade_headers("http://evil.example", host=host)
        )

    assert (response.status_code, response.text) == (403, "Origin not allowed")


async def test_a_dot_in_the_host_matches_only_a_dot(serving: Serving) -> None:
    async with serving(greeter) as server:
        lookalike = f"http://127x0x0x1:{server.port}"  # the host is 127.0.0.1:PORT
        with pytest.raises(InvalidStatus) as refused:
            async with client(server, origin=lookalike):
                pass

    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("prefix", ["http://evil.com/", "http://evil.com?", "evil"])
async def test_the_origin_match_is_anchored_at_the_start(prefix: str, serving: Serving) -> None:
    async with serving(greeter) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with client(server, origin=prefix + server.origin):
                pass

    assert refused.value.response.status_code == 403


async def test_zero_buffers_can_be_set_and_messages_still_flow_both_ways(serving: Serving) -> None:
    options = Options(send_channel_buffer=0, recv_channel_buffer=0)
    assert (options.send_channel_buffer, options.recv_channel_buffer) == (0, 0)

    @wschannels.messages(options)
    async def echo(receiver: Receiver[str], sender: Sender[str], done: Done) -> None:
        while True:
            chosen, value, _ = await select(receiver, done)
            if chosen is done:
                return
            await sender.send(value)

    async with serving(echo, options) as server, client(server) as ws:
        for number in range(20):
            await ws.send(f"message {number}")
        async with asyncio.timeout(WAIT):
            echoes = [await ws.recv() for _ in range(20)]

    assert echoes == [f"message {number}" for number in range(20)]


async def test_a_handler_that_never_reads_errors_still_sees_done(serving: Serving) -> None:
    options = Options(errors_channel_buffer=4)
    outcome: asyncio.Queue[int] = asyncio.Queue()

    @wschannels.json(Message, options)
    async def handler(receiver: Receiver[Message], errors: Errors, done: Done) -> None:
        await done.recv()
        outcome.put_nowait(len(errors))

    async with serving(handler, options) as server:
        async with client(server) as ws:
            for _ in range(50):
                await ws.send("not json")
        unread_errors = await asyncio.wait_for(outcome.get(), WAIT)

    assert ws.close_code == CloseCode.NORMAL_CLOSURE
    assert 0 < unread_errors <= 4  # the oldest were dropped, nothing waited on them


async def test_done_comes_only_after_every_buffered_message_was_received(serving: Serving) -> None:
    options = Options(recv_channel_buffer=200)
    client_gone = asyncio.Event()
    seen: asyncio.Queue[list[str]] = asyncio.Queue()

    @wschannels.messages(options)
    async def handler(receiver: Receiver[str], done: Done) -> None:
        await client_gone.wait()  # by now the client has closed: done is due
        received: list[str] = []
        while True:
            chosen, value, _ = await select(receiver, done)
            if chosen is done:
                break
            received.append(value)
        seen.put_nowait(received)

    async with serving(handler) as server:
        async with client(server) as ws:
            for number in range(100):
                await ws.send(str(number))
        client_gone.set()
        received = await asyncio.wait_for(seen.get(), WAIT)

    assert received == [str(number) for number in range(100)]


async def test_messages_sent_before_the_disconnect_all_reach_the_client_first(
    serving: Serving,
) -> None:
    @wschannels.bytes_messages()
    async def handler(sender: Sender[bytes], disconnect: Disconnect) -> None:
        for number in range(200):
            await sender.send(number.to_bytes(2, "big") * 5000)
        await disconnect.send(CloseCode.SERVICE_RESTART)

    async with serving(handler) as server, client(server) as ws:
        frames, code = await read_until_closed(ws)

    assert [frame[:2] for frame in frames] == [number.to_bytes(2, "big") for number in range(200)]
    assert code == CloseCode.SERVICE_RESTART


async def test_a_handler_that_never_reads_its_receiver_still_sees_done(serving: Serving) -> None:
    options = Options(recv_channel_buffer=2, pong_wait=1.0, ping_period=0.8)
    outcome: asyncio.Queue[bool] = asyncio.Queue()
    give_up: Channel[None] = Channel()

    @wschannels.messages(options)
    async def handler(receiver: Receiver[str], done: Done) -> None:
        chosen, _, _ = await select(done, give_up)
        outcome.put_nowait(chosen is done)

    async with serving(handler, options) as server:
        async with client(server) as ws:
            for number in range(20):
                await ws.send(str(number))
        try:
            async with asyncio.timeout(4):
                saw_done = await outcome.get()
        except TimeoutError:
            give_up.close()  # let the handler return, so that the server can stop
            saw_done = await asyncio.wait_for(outcome.get(), WAIT)

    assert saw_done
