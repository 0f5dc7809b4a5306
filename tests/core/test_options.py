"""Specification of ``wschannels.Options``: checked at once, frozen, mapped onto uvicorn."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

import wschannels
from tests.conftest import Server, serve
from wschannels import (
    CloseCode,
    Done,
    Errors,
    LogLevel,
    MessageTooBig,
    Options,
    Receiver,
    Sender,
    select,
)

WAIT = 10.0


def client(server: Server) -> connect:
    return connect(
        server.ws + "/",
        origin=Origin(server.origin),
        compression=None,
        open_timeout=WAIT,
        max_size=None,
    )


# -- checked when made ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_message_size", -1),
        ("max_message_size", 1.5),
        ("max_message_size", True),
        ("send_channel_buffer", -1),
        ("recv_channel_buffer", -1),
        ("recv_channel_buffer", "10"),
        ("errors_channel_buffer", 0),
        ("write_wait", 0),
        ("write_wait", -1.0),
        ("write_wait", "60"),
        ("pong_wait", 0),
        ("ping_period", 0),
        ("ping_period", -5),
        ("log_level", 4),
        ("log_level", "debug"),
        ("allowed_origin", "https?://(unclosed"),
        ("allowed_origin", "[z-a]"),
        ("allowed_origin", 42),
        ("require_origin", "yes"),
        ("logger", "wschannels"),
    ],
)
def test_a_bad_value_fails_at_once_naming_the_field(field: str, value: object) -> None:
    settings: dict[str, Any] = {field: value}
    with pytest.raises((ValueError, TypeError), match=rf"\bOptions\.{field}\b"):
        Options(**settings)


@pytest.mark.parametrize(
    ("pong_wait", "ping_period"),
    [(10.0, 10.0), (10.0, 20.0), (60.0, 60)],
)
def test_ping_period_must_be_shorter_than_pong_wait(pong_wait: float, ping_period: float) -> None:
    with pytest.raises(ValueError, match=r"Options\.ping_period .* shorter than .*pong_wait"):
        Options(pong_wait=pong_wait, ping_period=ping_period)


def test_waits_can_be_none_meaning_never() -> None:
    options = Options(write_wait=None, pong_wait=None, ping_period=None)

    assert (options.write_wait, options.pong_wait, options.ping_period) == (None, None, None)


def test_zero_is_kept_when_it_is_set() -> None:
    options = Options(send_channel_buffer=0, recv_channel_buffer=0, max_message_size=0)

    assert options.send_channel_buffer == 0
    assert options.recv_channel_buffer == 0
    assert options.max_message_size == 0


def test_the_defaults_are_the_seeds_in_seconds_and_bytes() -> None:
    options = Options()

    assert options.log_level == LogLevel.INFO
    assert options.skip_logging is False
    assert (options.write_wait, options.pong_wait, options.ping_period) == (60.0, 60.0, 48.0)
    assert options.max_message_size == 65536
    assert (options.send_channel_buffer, options.recv_channel_buffer) == (10, 10)
    assert options.allowed_origin == r"https?://{{host}}$"
    assert options.require_origin is False
    assert isinstance(options.logger, logging.Logger)


def test_a_log_level_given_as_the_seeds_number_becomes_a_log_level() -> None:
    assert Options(log_level=3).log_level is LogLevel.DEBUG  # type: ignore[arg-type]


def test_options_are_frozen() -> None:
    options = Options()

    with pytest.raises(dataclasses.FrozenInstanceError):
        options.write_wait = 1.0  # type: ignore[misc]


# -- mapped onto uvicorn ----------------------------------------------------------------


@wschannels.messages()
async def idle(done: Done) -> None:
    await done.recv()


def test_uvicorn_config_maps_keepalive_and_size_onto_uvicorn() -> None:
    options = Options(pong_wait=30.0, ping_period=20.0, max_message_size=1000)

    config = wschannels.uvicorn_config(idle, options)

    assert config.ws_ping_interval == 20.0
    assert config.ws_ping_timeout == 10.0  # the peer is dropped pong_wait after it was last heard
    assert config.ws_max_size == 1000


def test_uvicorn_config_maps_the_defaults_too() -> None:
    config = wschannels.uvicorn_config(idle)

    assert (config.ws_ping_interval, config.ws_ping_timeout) == (48.0, 12.0)
    assert config.ws_max_size == 65536


def test_uvicorn_config_with_no_pong_wait_never_drops_a_silent_peer() -> None:
    config = wschannels.uvicorn_config(idle, Options(pong_wait=None, ping_period=None))

    assert config.ws_ping_interval is None
    assert config.ws_ping_timeout is None


def test_uvicorn_settings_given_explicitly_win_over_the_mapped_ones() -> None:
    config = wschannels.uvicorn_config(idle, Options(max_message_size=1000), ws_max_size=5000)

    assert config.ws_max_size == 5000


# -- max_message_size, end to end -------------------------------------------------------

LIMIT = 100


def size_checker(options: Options, reported: asyncio.Queue[Exception]) -> Callable[..., Any]:
    """A handler that answers each message with its length and reports its errors."""

    @wschannels.raw(options)
    async def handler(
        receiver: Receiver[str | bytes], sender: Sender[str | bytes], errors: Errors, done: Done
    ) -> None:
        while True:
            chosen, value, ok = await select(receiver, errors, done)
            if chosen is done or not ok:  # errors is closed at the end, as in Go
                return
            if chosen is receiver:
                await sender.send(f"got {len(value)}")
            else:
                reported.put_nowait(value)

    return handler


async def close_code_after(ws: ClientConnection) -> int | None:
    try:
        async with asyncio.timeout(WAIT):
            async for _ in ws:
                pass
    except ConnectionClosed:
        pass
    return ws.close_code


@pytest.mark.parametrize(
    "message", ["x" * LIMIT, "é" * (LIMIT // 2), b"x" * LIMIT], ids=["ascii", "utf-8", "binary"]
)
async def test_a_message_of_exactly_max_message_size_is_received(message: str | bytes) -> None:
    options = Options(max_message_size=LIMIT)
    reported: asyncio.Queue[Exception] = asyncio.Queue()

    async with serve(size_checker(options, reported), options) as server, client(server) as ws:
        await ws.send(message)
        answer = await asyncio.wait_for(ws.recv(), WAIT)

    assert answer == f"got {len(message)}"
    assert reported.empty()


@pytest.mark.parametrize(
    "message",
    ["x" * 2 * LIMIT, "é" * (LIMIT // 2 + 10), b"x" * 2 * LIMIT],
    ids=["ascii", "utf-8-bytes-not-characters", "binary"],
)
async def test_the_binding_closes_with_1009_and_reports_message_too_big(
    message: str | bytes,
) -> None:
    options = Options(max_message_size=LIMIT)
    reported: asyncio.Queue[Exception] = asyncio.Queue()
    handler = size_checker(options, reported)

    # uvicorn's own limit set higher, so that the binding's check is the one that acts.
    async with serve(handler, options, ws_max_size=1 << 20) as server, client(server) as ws:
        await ws.send("fits")
        assert await asyncio.wait_for(ws.recv(), WAIT) == "got 4"
        await ws.send(message)
        code = await close_code_after(ws)
        error = await asyncio.wait_for(reported.get(), WAIT)

    assert code == CloseCode.MESSAGE_TOO_BIG
    assert isinstance(error, MessageTooBig)
    assert str(LIMIT) in str(error)


async def test_the_whole_stack_closes_with_1009_on_a_message_over_max_message_size() -> None:
    options = Options(max_message_size=LIMIT)
    ended = asyncio.Event()

    @wschannels.messages(options)
    async def handler(receiver: Receiver[str], sender: Sender[str], done: Done) -> None:
        while True:
            chosen, value, _ = await select(receiver, done)
            if chosen is done:
                ended.set()
                return
            await sender.send(f"got {len(value)}")

    async with serve(handler, options) as server, client(server) as ws:
        await ws.send("x" * LIMIT)
        assert await asyncio.wait_for(ws.recv(), WAIT) == f"got {LIMIT}"
        await ws.send("x" * 2 * LIMIT)
        code = await close_code_after(ws)
        await asyncio.wait_for(ended.wait(), WAIT)

    assert code == CloseCode.MESSAGE_TOO_BIG


def test_ping_period_follows_pong_wait_when_not_given() -> None:
    assert Options().ping_period == 48.0
    assert Options(pong_wait=10.0).ping_period == 8.0
    assert Options(pong_wait=10.0, ping_period=2.0).ping_period == 2.0
    assert type(Options().ping_period) is float
