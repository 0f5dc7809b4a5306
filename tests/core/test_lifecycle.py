"""The connection lifecycle, end to end: endings, close codes, nothing lost, teardown.

Every test runs on the four servers (tests/servers.py): a Starlette route under uvicorn,
picows, websockets and aiohttp.
"""

import asyncio
import contextlib
import logging
from typing import Any

import msgspec
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import wschannels
from tests.conftest import Server
from tests.servers import Serving
from wschannels import (
    CloseCode,
    Disconnect,
    Done,
    Errors,
    Options,
    Receiver,
    Sender,
    select,
)


class Message(msgspec.Struct):
    text: str


def client(server: Server, **kwargs: Any) -> Any:
    return connect(server.ws + "/", origin=server.origin, compression=None, **kwargs)


async def close_code_of(ws: Any) -> int | None:
    """Read until the server closes; return the close code the client saw."""
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    return ws.close_code  # type: ignore[no-any-return]


async def test_every_message_sent_before_the_close_reaches_the_handler_before_done(
    serving: Serving,
) -> None:
    received: list[str] = []
    finished = asyncio.Event()

    @wschannels.messages()
    async def collect(receiver: Receiver[str], done: Done) -> None:
        while True:
            chosen, value, _ = await select(receiver, done)
            if chosen is done:
                finished.set()
                return
            received.append(value)

    async with serving(collect) as server:
        async with client(server) as ws:
            for index in range(1000):
                await ws.send(f"m{index}")
        async with asyncio.timeout(10):
            await finished.wait()
    assert received == [f"m{index}" for index in range(1000)]


async def test_items_sent_before_disconnect_reach_the_client_before_the_close_frame(
    serving: Serving,
) -> None:
    @wschannels.messages()
    async def burst(sender: Sender[str], disconnect: Disconnect) -> None:
        for index in range(100):
            await sender.send(f"m{index}")
        await disconnect.send(CloseCode.GOING_AWAY)

    async with serving(burst) as server, client(server) as ws:
        got = []
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    got.append(await ws.recv())
        assert got == [f"m{index}" for index in range(100)]
        assert ws.close_code == CloseCode.GOING_AWAY


async def test_a_disconnect_code_is_what_the_client_sees_when_the_handler_returns_at_once(
    serving: Serving,
) -> None:
    @wschannels.messages()
    async def leave(disconnect: Disconnect) -> None:
        await disconnect.send(4001)

    async with serving(leave) as server, client(server) as ws:
        assert await close_code_of(ws) == 4001


async def test_a_handler_that_returns_closes_with_1000(serving: Serving) -> None:
    @wschannels.messages()
    async def quick(sender: Sender[str]) -> None:
        await sender.send("bye")

    async with serving(quick) as server, client(server) as ws:
        assert await ws.recv() == "bye"
        assert await close_code_of(ws) == CloseCode.NORMAL_CLOSURE


async def test_a_handler_that_raises_closes_with_1011_and_logs_the_traceback(
    serving: Serving, caplog: pytest.LogCaptureFixture
) -> None:
    @wschannels.messages()
    async def broken(sender: Sender[str]) -> None:
        raise RuntimeError("boom")

    caplog.set_level(logging.ERROR, logger="wschannels")
    async with serving(broken) as server, client(server) as ws:
        assert await close_code_of(ws) == CloseCode.INTERNAL_SERVER_ERR
    failures = [record for record in caplog.records if "handler failed" in record.getMessage()]
    assert failures and failures[0].exc_info is not None
    assert "boom" in str(failures[0].exc_info[1])


@pytest.mark.parametrize("code", [1004, 1005, 1006, 1015, 999, 2000, 5000])
async def test_a_close_code_that_may_not_go_on_the_wire_raises_at_the_call(
    serving: Serving, code: int
) -> None:
    outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    @wschannels.messages()
    async def bad_code(disconnect: Disconnect) -> None:
        try:
            await disconnect.send(code)
        except ValueError as error:
            outcome.set_result(error)
        else:
            outcome.set_result(None)

    async with serving(bad_code) as server, client(server) as ws:
        error = await asyncio.wait_for(outcome, 10)
        assert isinstance(error, ValueError) and str(code) in str(error)
        assert await close_code_of(ws) == CloseCode.NORMAL_CLOSURE


async def test_the_first_close_code_wins(serving: Serving) -> None:
    @wschannels.messages()
    async def twice(disconnect: Disconnect) -> None:
        await disconnect.send(CloseCode.TRY_AGAIN_LATER)
        await disconnect.send(CloseCode.GOING_AWAY)
        raise RuntimeError("ignored: the connection is already closing")

    async with serving(twice) as server, client(server) as ws:
        assert await close_code_of(ws) == CloseCode.TRY_AGAIN_LATER


async def test_a_handler_without_a_receiver_sees_done_however_much_the_client_sent(
    serving: Serving,
) -> None:
    finished = asyncio.Event()

    @wschannels.messages(Options(recv_channel_buffer=1))
    async def deaf(done: Done) -> None:
        await done.recv()
        finished.set()

    async with serving(deaf) as server:
        async with client(server) as ws:
            for index in range(3000):
                await ws.send(f"{index:032d}")
        async with asyncio.timeout(10):
            await finished.wait()


async def test_an_invalid_message_is_reported_and_the_next_one_flows(serving: Serving) -> None:
    seen: list[Any] = []

    @wschannels.json(Message)
    async def echo(
        receiver: Receiver[Message], sender: Sender[Message], done: Done, errors: Errors
    ) -> None:
        while True:
            chosen, value, _ = await select(receiver, errors, done)
            if chosen is done:
                return
            seen.append(value)
            if chosen is receiver:
                await sender.send(value)

    async with serving(echo) as server, client(server) as ws:
        await ws.send("{not json")
        await ws.send('{"text": 5}')
        await ws.send('{"text": "fine"}')
        assert msgspec.json.decode(await asyncio.wait_for(ws.recv(), 10)) == {"text": "fine"}
    invalid = [item for item in seen if isinstance(item, wschannels.InvalidMessage)]
    assert [error.payload for error in invalid] == ["{not json", '{"text": 5}']
    assert all(error.reason for error in invalid)


async def test_deeply_nested_json_is_reported_and_the_messages_around_it_are_delivered(
    serving: Serving, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: nesting 1,000 levels deep made msgspec raise RecursionError out of the codec."""
    seen: list[Any] = []

    @wschannels.json(Message)
    async def echo(
        receiver: Receiver[Message], sender: Sender[Message], done: Done, errors: Errors
    ) -> None:
        while True:
            chosen, value, _ = await select(receiver, errors, done)
            if chosen is done:
                return
            seen.append(value)
            if chosen is receiver:
                await sender.send(value)

    caplog.set_level(logging.DEBUG, logger="wschannels")
    nested = '{"text": ' + "[" * 1000 + "]" * 1000 + "}"
    async with serving(echo) as server, client(server) as ws:
        await ws.send('{"text": "before"}')
        await ws.send(nested)
        await ws.send('{"text": "after"}')
        replies = [msgspec.json.decode(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]
    assert replies == [{"text": "before"}, {"text": "after"}]
    invalid = [item for item in seen if isinstance(item, wschannels.InvalidMessage)]
    assert [error.payload for error in invalid] == [nested]
    assert max(len(record.getMessage()) for record in caplog.records) < 400


async def test_errors_the_handler_does_not_read_are_dropped_oldest_first(serving: Serving) -> None:
    drained: asyncio.Future[list[Exception]] = asyncio.get_running_loop().create_future()

    @wschannels.json(Message, Options(errors_channel_buffer=4))
    async def late_reader(receiver: Receiver[Message], errors: Errors) -> None:
        await receiver.recv()  # the good message comes after ten bad ones
        found = []
        while len(errors):
            found.append(errors.recv_nowait())
        drained.set_result(found)

    async with serving(late_reader) as server, client(server) as ws:
        for index in range(10):
            await ws.send(f"bad {index}")
        await ws.send('{"text": "good"}')
        found = await asyncio.wait_for(drained, 10)
    assert [error.payload for error in found] == [f"bad {index}" for index in range(6, 10)]


async def test_a_message_over_max_message_size_closes_with_1009_and_is_reported(
    serving: Serving,
) -> None:
    reported: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()

    @wschannels.messages(Options(max_message_size=100))
    async def small(receiver: Receiver[str], errors: Errors, done: Done) -> None:
        chosen, value, _ = await select(errors, done)
        if chosen is errors:
            reported.set_result(value)
        await done.recv()

    # The server's own frame limit is raised so that the engine's check is the one tested.
    async with serving(small, ws_max_size=1 << 20) as server, client(server) as ws:
        await ws.send("x" * 200)
        assert await close_code_of(ws) == CloseCode.MESSAGE_TOO_BIG
        assert isinstance(await asyncio.wait_for(reported, 10), wschannels.MessageTooBig)


async def test_a_write_that_outlasts_write_wait_ends_the_connection_and_is_reported(
    serving: Serving,
) -> None:
    outcome: asyncio.Future[list[Exception]] = asyncio.get_running_loop().create_future()

    @wschannels.bytes_messages(Options(write_wait=0.5, send_channel_buffer=2))
    async def flood(sender: Sender[bytes], done: Done, errors: Errors) -> None:
        chunk = b"x" * 65536
        with contextlib.suppress(wschannels.ChannelClosed):
            while not done.is_set():
                await sender.send(chunk)
        await done.recv()
        found = [error async for error in errors]
        outcome.set_result(found)

    # A client that never reads: its small receive queue fills, then TCP holds the server.
    async with (
        serving(flood) as server,
        client(server, max_queue=1, max_size=None, close_timeout=0.5),
    ):
        found = await asyncio.wait_for(outcome, 20)
    assert any(isinstance(error, wschannels.WriteTimeout) for error in found)


async def test_no_task_is_left_running_after_connections_end(serving: Serving) -> None:
    @wschannels.json(Message)
    async def echo(receiver: Receiver[Message], sender: Sender[Message], done: Done) -> None:
        while True:
            chosen, value, _ = await select(receiver, done)
            if chosen is done:
                return
            await sender.send(value)

    async with serving(echo) as server:
        await asyncio.sleep(0.1)
        before = asyncio.all_tasks()
        for _ in range(5):
            async with client(server) as ws:
                await ws.send('{"text": "hi"}')
                await ws.recv()
        async with asyncio.timeout(10):
            while len(asyncio.all_tasks() - before) > 0:
                await asyncio.sleep(0.02)
        assert asyncio.all_tasks() - before == set()


async def test_a_handler_that_keeps_running_after_done_cannot_send_any_more(
    serving: Serving,
) -> None:
    outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    @wschannels.messages()
    async def stubborn(sender: Sender[str], done: Done) -> None:
        await done.recv()
        try:
            await sender.send("too late")
        except wschannels.ChannelClosed as error:
            outcome.set_result(error)
        else:
            outcome.set_result(None)

    async with serving(stubborn) as server:
        async with client(server):
            pass
        assert isinstance(await asyncio.wait_for(outcome, 10), wschannels.ChannelClosed)


async def test_an_unbuffered_sender_and_receiver_still_carry_every_message(
    serving: Serving,
) -> None:
    @wschannels.messages(Options(send_channel_buffer=0, recv_channel_buffer=0))
    async def echo(receiver: Receiver[str], sender: Sender[str], done: Done) -> None:
        async for message in receiver:
            await sender.send(message)

    async with serving(echo) as server, client(server) as ws:
        for index in range(50):
            await ws.send(str(index))
        replies = [await asyncio.wait_for(ws.recv(), 10) for _ in range(50)]
        assert replies == [str(index) for index in range(50)]


async def test_a_handler_that_leaves_its_receiver_full_holds_the_client_back(
    serving: Serving,
) -> None:
    release = asyncio.Event()

    @wschannels.bytes_messages(Options(ping_period=None, pong_wait=None))
    async def deaf(receiver: Receiver[bytes]) -> None:
        await release.wait()

    chunk = b"x" * 60_000
    async with serving(deaf) as server, client(server) as ws:
        held_back = False
        for _ in range(2000):  # 120 MB if nothing held the client back
            try:
                await asyncio.wait_for(ws.send(chunk), 1.0)
            except TimeoutError:
                held_back = True
                break
        assert held_back
        release.set()  # the handler returns: what was held back is discarded, the close read
        assert await close_code_of(ws) == CloseCode.NORMAL_CLOSURE


async def test_a_receiver_left_full_for_pong_wait_closes_with_1013_and_is_reported(
    serving: Serving,
) -> None:
    seen: list[Exception] = []

    @wschannels.messages(
        Options(ping_period=0.2, pong_wait=0.6, recv_channel_buffer=2, skip_logging=True)
    )
    async def stuck(receiver: Receiver[str], errors: Errors, done: Done) -> None:
        await receiver.recv()
        while True:
            chosen, value, _ = await select(errors, done)  # the receiver is never read again
            if chosen is done:
                return
            seen.append(value)

    async with serving(stuck) as server, client(server) as ws:
        for index in range(200):
            await ws.send(f"m{index}")
        assert await close_code_of(ws) == CloseCode.TRY_AGAIN_LATER
    async with asyncio.timeout(10):
        while not seen:
            await asyncio.sleep(0.01)
    assert isinstance(seen[0], wschannels.ReceiverStalled)
