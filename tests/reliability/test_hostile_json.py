"""Hostile JSON on every server: each bad message is an `InvalidMessage` on `errors`, the
messages before and after it are delivered, the connection stays open, and no log line carries
more than a short excerpt of it. Fine JSON that is merely extreme (a 60,000-character string)
is delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pydantic
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

import wschannels
from bench.servers.registry import ServerKind
from tests.reliability.conftest import OPTIONS, assert_serves_new_client, client
from tests.reliability.conftest import ROUTES as BYSTANDER_ROUTES
from tests.reliability.logcheck import assert_logs_short
from wschannels import Done, Errors, InvalidMessage, Receiver, Sender, select


class StructMessage(msgspec.Struct):
    text: str
    count: int


@dataclass
class DataclassMessage:
    text: str
    count: int


class PydanticMessage(pydantic.BaseModel):
    text: str
    count: int


def echo_route(model: Any, error_reply: Any) -> Any:
    """A ``json(model)`` echo that answers each error on ``errors`` with ``error_reply(kind)``."""

    @wschannels.json(model, OPTIONS)
    async def echo(
        receiver: Receiver[Any], sender: Sender[Any], errors: Errors, done: Done
    ) -> None:
        while True:
            chosen, value, _ = await select(receiver, errors, done)
            if chosen is done:
                return
            if chosen is errors:
                await sender.send(error_reply(type(value).__name__))
            else:
                await sender.send(value)

    return echo


ROUTES = {
    **BYSTANDER_ROUTES,
    "/struct": echo_route(StructMessage, lambda kind: StructMessage(f"error: {kind}", -1)),
    "/dataclass": echo_route(DataclassMessage, lambda kind: DataclassMessage(f"error: {kind}", -1)),
    "/pydantic": echo_route(PydanticMessage, lambda kind: PydanticMessage(text=f"error: {kind}",
                                                                          count=-1)),
    "/any": echo_route(Any, lambda kind: {"error": kind}),
}
MODEL_PATHS = ["/struct", "/dataclass", "/pydantic"]
GOOD = '{"text":"fine","count":1}'
INVALID = f"error: {InvalidMessage.__name__}"

DEPTH = 1000


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


DIGITS = "1234567890" * 6000  # 60,000 digits


@pytest.fixture
async def port(server_kind: ServerKind) -> AsyncIterator[int]:
    async with server_kind.serve(ROUTES, OPTIONS) as listening:
        yield listening


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


async def exchange(ws: ClientConnection, frame: str | bytes) -> Any:
    """Send ``frame`` between two good messages; what came back for it (decoded JSON).

    Both good messages must come back too. The handler takes from ``receiver`` and ``errors``
    in one ``select``, so the error's answer may come before or after the second good one.
    """
    async with asyncio.timeout(10):
        await ws.send(GOOD)
        await ws.send(frame)
        await ws.send(GOOD)
        answers = [msgspec.json.decode(await ws.recv()) for _ in range(3)]
    good = msgspec.json.decode(GOOD)
    assert answers[0] == good
    others = answers[1:]
    assert good in others, answers
    others.remove(good)
    return others[0]


def is_invalid(answer: Any) -> bool:
    return answer.get("text") == INVALID or answer.get("error") == InvalidMessage.__name__


HOSTILE_FOR_MODELS: list[tuple[str, str | bytes]] = [
    (f"{DEPTH} nested arrays as a field", '{"text":' + nested(DEPTH) + ',"count":1}'),
    (f"{DEPTH} nested objects as a field", '{"text":"a","count":' + nested_objects(DEPTH) + "}"),
    ("30,000 nested arrays", nested(30_000)),
    ("a 60,000-digit count", '{"text":"a","count":' + DIGITS + "}"),
    ("a 60,000-digit float count", '{"text":"a","count":0.' + DIGITS + "}"),
    ("a count of 1e999999", '{"text":"a","count":1e999999}'),
    ("a 60,000-character text that is a number", '{"text":' + DIGITS + ',"count":1}'),
    ("text as a number", '{"text":5,"count":1}'),
    ("text as a list", '{"text":["a"],"count":1}'),
    ("count as a word", '{"text":"a","count":"one"}'),
    ("a missing field", '{"text":"a"}'),
    ("a list", "[]"),
    ("null", "null"),
    ("a bare string", '"text"'),
    ("truncated", '{"text":"a","count":'),
    ("trailing garbage", GOOD + "garbage"),
    ("a lone surrogate escape", '{"text":"\\ud800","count":1}'),
    ("binary that is not UTF-8", b'{"text":"\xff","count":1}'),
    ("an empty message", ""),
]


@pytest.mark.parametrize("path", MODEL_PATHS)
@pytest.mark.parametrize("frame", [h[1] for h in HOSTILE_FOR_MODELS],
                         ids=[h[0] for h in HOSTILE_FOR_MODELS])  # fmt: skip
async def test_hostile_json_is_an_invalid_message_and_the_connection_goes_on(
    port: int, path: str, frame: str | bytes, logs: pytest.LogCaptureFixture
) -> None:
    async with client(port, path) as ws:
        answer = await exchange(ws, frame)
        assert is_invalid(answer), answer
    await assert_serves_new_client(port)
    text = frame if isinstance(frame, str) else frame.decode(errors="replace")
    assert_logs_short(logs.records, [text])


HOSTILE_FOR_ANY: list[tuple[str, str]] = [
    (f"{DEPTH} nested arrays", nested(DEPTH)),
    (f"{DEPTH} nested objects", nested_objects(DEPTH)),
    ("30,000 nested arrays", nested(30_000)),
    ("unbalanced nesting", "[" * 30_000),
]


@pytest.mark.parametrize("frame", [h[1] for h in HOSTILE_FOR_ANY],
                         ids=[h[0] for h in HOSTILE_FOR_ANY])  # fmt: skip
async def test_deep_nesting_into_any_is_an_invalid_message(
    port: int, frame: str, logs: pytest.LogCaptureFixture
) -> None:
    async with client(port, "/any") as ws:
        assert is_invalid(await exchange(ws, frame))
    await assert_serves_new_client(port)
    assert_logs_short(logs.records, [frame])


async def test_a_60000_digit_number_into_any_is_delivered_or_invalid_never_fatal(
    port: int, logs: pytest.LogCaptureFixture
) -> None:
    async with client(port, "/any") as ws:
        answer = await exchange(ws, DIGITS)
        assert answer == int(DIGITS) if not isinstance(answer, dict) else is_invalid(answer)
    assert_logs_short(logs.records, [DIGITS])


@pytest.mark.parametrize("path", MODEL_PATHS)
async def test_a_60000_character_string_is_delivered_whole(port: int, path: str) -> None:
    huge = "x" * 60_000  # with the rest of the object, just under max_message_size (65,536)
    async with client(port, path) as ws:
        answer = await exchange(ws, msgspec.json.encode({"text": huge, "count": 2}).decode())
        assert answer == {"text": huge, "count": 2}


async def test_a_flood_of_invalid_messages_loses_none_of_the_valid_ones_between_them(
    port: int,
) -> None:
    """Every valid message is delivered, in order; the invalid ones are reported.

    ``errors`` never holds the library back: in a burst faster than the handler
    reads it, the oldest reports are dropped (and counted), so at least a full
    buffer of them is reported, not necessarily all.
    """
    answers = []
    async with client(port, "/struct") as ws:
        for index in range(200):
            await ws.send(nested(DEPTH) if index % 2 else f'{{"text":"m{index}","count":{index}}}')
        async with asyncio.timeout(30):
            while sum(1 for a in answers if a["count"] >= 0) < 100:
                answers.append(msgspec.json.decode(await ws.recv()))
    good = [a for a in answers if a["count"] >= 0]
    assert [a["text"] for a in good] == [f"m{index}" for index in range(0, 200, 2)]
    reported = sum(1 for a in answers if a["text"] == INVALID)
    assert min(100, OPTIONS.errors_channel_buffer) <= reported <= 100


async def test_a_message_that_breaks_the_decoder_leaves_no_long_log_line(
    port: int, logs: pytest.LogCaptureFixture
) -> None:
    """Whatever becomes of the connection, the logs carry an excerpt of the payload at most."""
    frame = nested(30_000)
    async with client(port, "/any") as ws:
        await ws.send(frame)
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            async with asyncio.timeout(5):
                await ws.recv()
    await assert_serves_new_client(port)
    await asyncio.sleep(0.1)  # the server's teardown logs after the client saw the close
    assert_logs_short(logs.records, [frame])
