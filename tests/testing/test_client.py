"""Specification of ``wschannels.testing``: a client whose every wait has a deadline."""

from __future__ import annotations

import msgspec
import pytest
from fastapi import FastAPI, WebSocket

import wschannels
from wschannels import CloseCode, Disconnect, Options, Receiver, Sender
from wschannels.testing import (
    SAME_ORIGIN,
    Closed,
    ReceiveTimeout,
    Refused,
    basic_auth,
    bearer,
    connect,
    same_origin,
    serve,
)
from wschannels.testing.pytest_plugin import Connector

SHORT = 0.3  # seconds a receive waits when the test expects nothing to come


class Message(msgspec.Struct):
    text: str


@wschannels.raw()
async def echo(receiver: Receiver[str | bytes], sender: Sender[str | bytes]) -> None:
    async for message in receiver:
        await sender.send(message)


@wschannels.json(Message)
async def shout(receiver: Receiver[Message], sender: Sender[Message]) -> None:
    async for message in receiver:
        await sender.send(Message(message.text.upper()))


@wschannels.messages()
async def leave(receiver: Receiver[str], sender: Sender[str], disconnect: Disconnect) -> None:
    await sender.send("bye")
    await disconnect.send(CloseCode.GOING_AWAY)


async def test_text_and_binary_frames_come_back_as_str_and_bytes() -> None:
    async with serve(echo) as server, connect(server.url("/")) as client:
        await client.send("text")
        await client.send(b"\x00binary")

        assert await client.receive_text() == "text"
        assert await client.receive_bytes() == b"\x00binary"
        assert client.received == ["text", b"\x00binary"]


async def test_anything_else_is_sent_as_json_and_read_back_into_a_type() -> None:
    async with serve(shout) as server, connect(server.url("/")) as client:
        await client.send({"text": "hi"})
        await client.send(Message("there"))

        assert await client.receive_json() == {"text": "HI"}
        assert await client.receive_json(Message) == Message("THERE")


async def test_a_receive_that_gets_nothing_raises_and_shows_what_did_arrive() -> None:
    async with serve(echo) as server, connect(server.url("/")) as client:
        await client.send("first")
        await client.send("x" * 10_000)
        await client.receive()
        await client.receive()

        with pytest.raises(ReceiveTimeout) as timeout:
            await client.receive(timeout=SHORT)

    assert isinstance(timeout.value, TimeoutError)
    assert timeout.value.received == ["first", "x" * 10_000]
    text = str(timeout.value)
    assert f"within {SHORT} s" in text
    assert "2 message(s)" in text and "'first'" in text
    assert "(10000 in all)" in text
    assert len(text) < 400  # an excerpt, not the whole message


async def test_the_default_timeout_is_the_clients() -> None:
    async with serve(echo) as server, connect(server.url("/"), timeout=SHORT) as client:
        with pytest.raises(ReceiveTimeout, match="nothing was received"):
            await client.receive()


async def test_a_close_by_the_server_is_reported_with_its_code() -> None:
    async with serve(leave) as server, connect(server.url("/")) as client:
        assert await client.receive() == "bye"
        with pytest.raises(Closed) as closed:
            await client.receive()

    assert closed.value.code == 1001
    assert client.close_code == 1001
    assert closed.value.received == ["bye"]


async def test_wait_closed_collects_what_arrives_and_returns_the_code() -> None:
    async with serve(leave) as server, connect(server.url("/")) as client:
        assert await client.wait_closed() == 1001

    assert client.received == ["bye"]
    assert client.close_reason == ""


async def test_close_sends_the_code_and_the_client_sees_it() -> None:
    async with serve(echo) as server:
        client = await connect(server.url("/"))
        await client.close(4000, "done here")

    assert client.close_code == 4000
    assert client.close_reason == "done here"


async def test_a_refused_handshake_raises_with_status_and_body() -> None:
    async with serve(echo) as server:
        with pytest.raises(Refused) as refused:
            await connect(server.url("/"), origin="http://evil.example")

    assert refused.value.status == 403
    assert refused.value.body == b"Origin not allowed"
    assert "403" in str(refused.value)


async def _hello(sender: Sender[str]) -> None:
    await sender.send("hello")


async def test_same_origin_sends_the_origin_of_the_servers_own_pages() -> None:
    options = Options(require_origin=True)
    strict = wschannels.messages(options)(_hello)

    async with serve(strict, options) as server:
        with pytest.raises(Refused):
            await connect(server.url("/"))  # no Origin at all
        async with connect(server.url("/"), origin=SAME_ORIGIN) as client:
            assert await client.receive() == "hello"

    assert same_origin("ws://127.0.0.1:8000/a/b?c") == "http://127.0.0.1:8000"
    assert same_origin("wss://example.com/x") == "https://example.com"


async def test_header_helpers_reach_the_handler() -> None:
    app = FastAPI()

    @app.websocket("/who")
    @wschannels.messages()
    async def who(websocket: WebSocket, sender: Sender[str]) -> None:
        await sender.send(websocket.headers.get("authorization", "none"))

    async with serve(app) as server:
        async with connect(server.url("/who"), headers=bearer("t0k3n")) as client:
            assert await client.receive() == "Bearer t0k3n"
        async with connect(server.url("/who"), headers=basic_auth("ann", "pw")) as client:
            assert await client.receive() == "Basic YW5uOnB3"


async def test_the_fixture_is_registered_and_connects(ws_connect: Connector) -> None:
    async with serve(echo) as server:
        client = await ws_connect(server.url("/"))
        await client.send("hi")
        assert await client.receive() == "hi"
        assert ws_connect.clients == [client]
        await client.close()


async def test_the_fixture_drops_connections_a_test_left_open() -> None:
    connector = Connector()
    async with serve(echo) as server:
        client = await connector(server.url("/"))
        connector._drop_all()
        with pytest.raises(Closed) as closed:
            await client.receive()

    assert closed.value.code == 1006
