"""``json(Model)`` with every kind of model, invalid messages, and items that cannot be sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

import msgspec
import pydantic
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

import wschannels
from tests.conftest import Server, serve
from wschannels import CloseCode, Done, Errors, InvalidMessage, Options, Receiver, Sender, select

WAIT = 10.0


@dataclass
class DataclassMessage:
    text: str
    count: int


class StructMessage(msgspec.Struct):
    text: str
    count: int


class TypedDictMessage(TypedDict):
    text: str
    count: int


class PydanticMessage(pydantic.BaseModel):
    text: str
    count: int


GOOD = '{"text":"Hello World","count":3}'

# model -> (a good frame, the item it decodes into, a frame that fails validation)
MODELS: dict[str, tuple[Any, str, object, str]] = {
    "dataclass": (
        DataclassMessage,
        GOOD,
        DataclassMessage("Hello World", 3),
        '{"text":"Hello World","count":"three"}',
    ),
    "msgspec-struct": (
        StructMessage,
        GOOD,
        StructMessage("Hello World", 3),
        '{"text":"Hello World"}',
    ),
    "typeddict": (
        TypedDictMessage,
        GOOD,
        {"text": "Hello World", "count": 3},
        '{"text":5,"count":3}',
    ),
    "pydantic": (
        PydanticMessage,
        GOOD,
        PydanticMessage(text="Hello World", count=3),
        '{"text":"Hello World","count":[]}',
    ),
    "dict": (dict, GOOD, {"text": "Hello World", "count": 3}, "[1, 2]"),
    "list": (list, '[1,"two",{"three":3}]', [1, "two", {"three": 3}], '{"a": 1}'),
    "any": (Any, '{"nested":[1,null]}', {"nested": [1, None]}, '{"unclosed": '),
}


def client(server: Server) -> connect:
    return connect(
        server.ws + "/", origin=Origin(server.origin), compression=None, open_timeout=WAIT
    )


def echo_reporting(
    model: Any,
    items: asyncio.Queue[Any],
    errors_seen: asyncio.Queue[Exception],
    options: Options | None = None,
) -> Callable[..., Any]:
    """An echo handler that also hands the test each item and each error it got."""

    @wschannels.json(model, options)
    async def echo(
        receiver: Receiver[Any], sender: Sender[Any], errors: Errors, done: Done
    ) -> None:
        while True:
            chosen, value, ok = await select(receiver, errors, done)
            if chosen is done or not ok:  # errors is closed at the end, as in Go
                return
            if chosen is errors:
                errors_seen.put_nowait(value)
            else:
                items.put_nowait(value)
                await sender.send(value)

    return echo


@pytest.mark.parametrize("kind", list(MODELS))
async def test_a_model_round_trips_through_a_real_server(kind: str) -> None:
    model, frame, item, _ = MODELS[kind]
    items: asyncio.Queue[Any] = asyncio.Queue()
    errors_seen: asyncio.Queue[Exception] = asyncio.Queue()

    async with serve(echo_reporting(model, items, errors_seen)) as server, client(server) as ws:
        await ws.send(frame)
        echo = await asyncio.wait_for(ws.recv(), WAIT)
        received = await asyncio.wait_for(items.get(), WAIT)

    assert received == item
    assert type(received) is type(item)
    assert isinstance(echo, str)  # JSON goes out as a text frame
    assert json.loads(echo) == json.loads(frame)
    assert errors_seen.empty()


@pytest.mark.parametrize("kind", list(MODELS))
async def test_an_invalid_message_is_reported_on_errors_and_the_connection_goes_on(
    kind: str,
) -> None:
    model, frame, item, invalid = MODELS[kind]
    items: asyncio.Queue[Any] = asyncio.Queue()
    errors_seen: asyncio.Queue[Exception] = asyncio.Queue()

    async with serve(echo_reporting(model, items, errors_seen)) as server, client(server) as ws:
        await ws.send(invalid)
        await ws.send(frame)
        echo = await asyncio.wait_for(ws.recv(), WAIT)
        error = await asyncio.wait_for(errors_seen.get(), WAIT)
        received = await asyncio.wait_for(items.get(), WAIT)

    assert isinstance(error, InvalidMessage)
    assert error.payload == invalid
    assert isinstance(error.reason, str) and error.reason
    assert "\n" not in error.reason
    assert received == item
    assert json.loads(echo) == json.loads(frame)
    assert items.empty()  # the invalid message never reached the receiver


async def test_a_binary_frame_that_is_not_json_is_reported_with_its_bytes() -> None:
    items: asyncio.Queue[Any] = asyncio.Queue()
    errors_seen: asyncio.Queue[Exception] = asyncio.Queue()
    handler = echo_reporting(DataclassMessage, items, errors_seen)

    async with serve(handler) as server, client(server) as ws:
        await ws.send(b"\xff\x00")
        error = await asyncio.wait_for(errors_seen.get(), WAIT)

    assert isinstance(error, InvalidMessage)
    assert error.payload == b"\xff\x00"


async def test_close_on_invalid_message_closes_with_1007() -> None:
    options = Options(close_on_invalid_message=True)
    items: asyncio.Queue[Any] = asyncio.Queue()
    errors_seen: asyncio.Queue[Exception] = asyncio.Queue()
    handler = echo_reporting(DataclassMessage, items, errors_seen, options)

    async with serve(handler, options) as server, client(server) as ws:
        await ws.send(GOOD)
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT)) == json.loads(GOOD)
        await ws.send('{"text": 1}')
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), WAIT)
        error = await asyncio.wait_for(errors_seen.get(), WAIT)

    assert ws.close_code == CloseCode.INVALID_FRAME_PAYLOAD_DATA
    assert isinstance(error, InvalidMessage)


# binding -> (an item it cannot send, an item it can, that item's frame)
UNSENDABLE: dict[str, tuple[Callable[[], Callable[[Any], Any]], object, object, str | bytes]] = {
    "json-dataclass-given-str": (
        lambda: wschannels.json(DataclassMessage),
        "not a message",
        DataclassMessage("ok", 1),
        '{"text":"ok","count":1}',
    ),
    "json-struct-given-dataclass": (
        lambda: wschannels.json(StructMessage),
        DataclassMessage("ok", 1),
        StructMessage("ok", 1),
        '{"text":"ok","count":1}',
    ),
    "json-pydantic-given-dict": (
        lambda: wschannels.json(PydanticMessage),
        {"text": "ok", "count": 1},
        PydanticMessage(text="ok", count=1),
        '{"text":"ok","count":1}',
    ),
    "json-dict-given-object": (lambda: wschannels.json(dict), object(), {"a": 1}, '{"a":1}'),
    "messages-given-bytes": (wschannels.messages, b"bytes", "text", "text"),
    "bytes-messages-given-str": (wschannels.bytes_messages, "text", b"bytes", b"bytes"),
    "raw-given-int": (wschannels.raw, 42, "text", "text"),
}


@pytest.mark.parametrize("kind", list(UNSENDABLE))
async def test_an_item_that_cannot_be_encoded_raises_type_error_at_send(kind: str) -> None:
    binding, unsendable, sendable, frame = UNSENDABLE[kind]
    raised: asyncio.Queue[BaseException | None] = asyncio.Queue()

    @binding()
    async def handler(sender: Sender[Any], done: Done) -> None:
        try:
            await sender.send(unsendable)
        except Exception as error:
            raised.put_nowait(error)
        else:
            raised.put_nowait(None)
        await sender.send(sendable)  # the connection is still fine
        await done.recv()

    async with serve(handler) as server, client(server) as ws:
        received = await asyncio.wait_for(ws.recv(), WAIT)
        error = await asyncio.wait_for(raised.get(), WAIT)

    assert isinstance(error, TypeError)
    assert received == frame


class NotAModel:
    def __init__(self, text: str) -> None:
        self.text = text


@pytest.mark.parametrize("model", ["DataclassMessage", 5], ids=repr)
def test_json_of_something_that_is_not_a_type_fails_at_once(model: Any) -> None:
    with pytest.raises(TypeError, match=r"json\(\) cannot decode into"):
        wschannels.json(model)


def test_json_of_a_plain_class_that_no_codec_can_build_fails_at_once() -> None:
    with pytest.raises(TypeError, match=r"json\(\) cannot decode into"):
        wschannels.json(NotAModel)
