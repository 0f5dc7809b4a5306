"""The engine's rules, without a socket: fed messages and events, watched through its transport.

Each test drives a :class:`~wschannels.engine.Connection` on the in-memory
transport directly, the way the ``websockets`` library tests its protocol:
milliseconds per test, every rule on its own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import pytest

import wschannels
from wschannels import (
    ChannelClosed,
    CloseCode,
    Disconnect,
    Done,
    Errors,
    InvalidMessage,
    KeepaliveTimeout,
    MessageTooBig,
    Options,
    Receiver,
    ReceiverStalled,
    Sender,
    State,
    WriteTimeout,
    select,
)
from wschannels.codecs import JsonCodec, TextCodec
from wschannels.engine import Connection
from wschannels.servers.memory import MemoryTransport, connect_memory

ORIGIN = "http://testserver"  # the Origin a browser on the same site sends


class Message(msgspec.Struct):
    text: str


class Wired:
    """A connection on the in-memory transport, with the views a handler would get."""

    def __init__(self, options: Options, codec: Any, keepalive: bool, **transport: Any) -> None:
        self.transport = MemoryTransport(**transport)
        self.connection = Connection(codec, options, self.transport, "test", keepalive=keepalive)
        self.transport.connection = self.connection
        self.receiver: Receiver[Any] = Receiver(self.connection.receiver_channel, self.connection)
        self.sender: Sender[Any] = Sender(self.connection)
        self.errors = Errors(self.connection.errors_channel, self.connection)
        self.done: Done = self.connection.done
        self.disconnect = Disconnect(self.connection)


def wire(
    codec: Any = None,
    keepalive: bool = False,
    transport: dict[str, Any] | None = None,
    **options: Any,
) -> Wired:
    return Wired(Options(**options), codec or TextCodec(), keepalive, **(transport or {}))


async def turns(count: int = 3) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


# -- reading and flow control ---------------------------------------------------------------


async def test_messages_reach_the_receiver_in_order_and_done_follows_the_last() -> None:
    wired = wire()
    for index in range(5):
        assert wired.connection.feed(f"m{index}")
    wired.connection.peer_closed(CloseCode.NORMAL_CLOSURE)
    assert wired.connection.state is State.CLOSED
    assert not wired.done.is_set()  # five messages are still to be received
    got = []
    while True:
        chosen, value, _ = await select(wired.receiver, wired.done)
        if chosen is wired.done:
            break
        got.append(value)
    assert got == [f"m{index}" for index in range(5)]


async def test_a_full_receiver_pauses_reading_holds_what_still_arrives_and_resumes() -> None:
    wired = wire(recv_channel_buffer=2)
    assert wired.connection.feed("a") and wired.connection.feed("b")
    assert not wired.transport.paused
    assert not wired.connection.feed("c")  # full: the adapter is told to stop
    assert wired.transport.paused and wired.transport.pauses == 1
    assert not wired.connection.feed("d")  # delivered anyway (already read): held, in order
    assert [await wired.receiver.recv() for _ in range(4)] == ["a", "b", "c", "d"]
    await turns()
    assert not wired.transport.paused and wired.transport.resumes == 1


async def test_an_unbuffered_receiver_holds_one_message_until_the_handler_takes_it() -> None:
    wired = wire(recv_channel_buffer=0)
    assert not wired.connection.feed("a")  # nobody is waiting: held, reading paused
    assert wired.transport.paused
    assert await wired.receiver.recv() == "a"
    await turns()
    assert not wired.transport.paused
    waiting = asyncio.ensure_future(wired.receiver.recv())
    await turns()
    assert wired.connection.feed("b")  # a waiting receiver takes it straight away
    assert await waiting == "b"


async def test_an_unbuffered_receiver_stays_unbuffered_after_a_cancelled_receive() -> None:
    """Regression: after a put-back the receiver buffered one item and released the reader."""
    wired = wire(recv_channel_buffer=0)
    waiting = asyncio.ensure_future(wired.receiver.recv())
    await turns()
    assert wired.connection.feed("a")  # handed to the waiting receive...
    waiting.cancel()  # ...which is cancelled before it resumes: "a" is put back
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not wired.connection.feed("b")  # no receiver waits: "b" is held, reading paused
    assert wired.transport.paused
    assert await wired.receiver.recv() == "a"
    await turns()
    # "b" must not have been moved into the (unbuffered) receiver, nor reading resumed.
    assert len(wired.receiver) == 0 and wired.transport.paused
    assert await wired.receiver.recv() == "b"
    await turns()
    assert not wired.transport.paused


async def test_the_clients_close_after_held_messages_waits_until_they_are_received() -> None:
    wired = wire(recv_channel_buffer=1)
    wired.connection.feed("a")
    wired.connection.feed("b")  # held
    wired.connection.peer_closed(CloseCode.GOING_AWAY)
    assert wired.connection.state is State.OPEN  # "b" first
    assert await wired.receiver.recv() == "a"
    assert await wired.receiver.recv() == "b"
    await turns()
    assert wired.connection.state is State.CLOSED
    assert wired.connection.close_code == CloseCode.GOING_AWAY
    assert await wired.done.recv() is True
    with pytest.raises(ChannelClosed):
        await wired.receiver.recv()


async def test_a_receiver_left_full_for_pong_wait_closes_with_1013() -> None:
    wired = wire(recv_channel_buffer=1, pong_wait=0.05)
    wired.connection.feed("a")
    wired.connection.feed("b")
    assert wired.transport.paused
    async with asyncio.timeout(2):
        error = await wired.errors.recv()
    assert isinstance(error, ReceiverStalled)
    assert wired.transport.close_code == CloseCode.TRY_AGAIN_LATER
    assert not wired.transport.paused  # closing reads on, so the client's close is seen


async def test_a_handler_without_a_receiver_still_sees_done_and_messages_are_counted() -> None:
    transport = MemoryTransport()
    connection = Connection(TextCodec(), Options(), transport, "test", wants_receiver=False)
    for index in range(3):
        assert connection.feed(f"m{index}")
    connection.peer_closed(CloseCode.NORMAL_CLOSURE)
    assert connection.done.is_set()
    assert connection.statistics().messages_discarded == 3


async def test_a_handler_that_never_reads_sees_done_after_a_grace_of_pong_wait() -> None:
    wired = wire(pong_wait=0.05)
    wired.connection.feed("unread")
    wired.connection.peer_closed(CloseCode.NORMAL_CLOSURE)
    async with asyncio.timeout(2):
        await wired.done.recv()
    assert wired.connection.statistics().messages_discarded == 1


# -- bad input ---------------------------------------------------------------------------


async def test_a_message_over_max_message_size_is_reported_and_closes_with_1009() -> None:
    wired = wire(max_message_size=4)
    wired.connection.feed("é" * 3)  # 3 characters, 6 bytes
    assert isinstance(await wired.errors.recv(), MessageTooBig)
    assert wired.transport.close_code == CloseCode.MESSAGE_TOO_BIG


async def test_an_invalid_message_is_reported_and_the_next_ones_flow() -> None:
    wired = wire(JsonCodec(Message))
    wired.connection.feed('{"text": "before"}')
    wired.connection.feed('{"text": 1}')
    wired.connection.feed('{"text": "after"}')
    assert (await wired.receiver.recv()).text == "before"
    assert (await wired.receiver.recv()).text == "after"
    error = await wired.errors.recv()
    assert isinstance(error, InvalidMessage) and error.payload == '{"text": 1}'
    assert wired.connection.state is State.OPEN


async def test_deeply_nested_json_is_an_invalid_message_not_a_crash() -> None:
    """Regression: msgspec's RecursionError escaped the codec and closed the connection (1011)."""
    wired = wire(JsonCodec(Message))
    nested = "[" * 5000 + "]" * 5000
    wired.connection.feed('{"text": "before"}')
    wired.connection.feed(nested)
    wired.connection.feed('{"text": "after"}')
    assert [(await wired.receiver.recv()).text for _ in range(2)] == ["before", "after"]
    error = await wired.errors.recv()
    assert isinstance(error, InvalidMessage) and error.payload == nested
    assert wired.connection.state is State.OPEN


async def test_close_on_invalid_message_closes_with_1007() -> None:
    wired = wire(JsonCodec(Message), close_on_invalid_message=True)
    wired.connection.feed("not json")
    assert isinstance(await wired.errors.recv(), InvalidMessage)
    assert wired.transport.close_code == CloseCode.INVALID_FRAME_PAYLOAD_DATA


async def test_no_log_line_carries_more_than_an_excerpt_of_client_data(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="wschannels")
    wired = wire(JsonCodec(Message), log_level=wschannels.LogLevel.DEBUG)
    huge = '{"text": ' + "9" * 60_000 + "}"
    wired.connection.feed(huge)
    wired.connection.feed("[" * 5000)
    wired.connection.feed('{"text": "' + "x" * 60_000)
    assert len([r for r in caplog.records if "invalid message" in r.getMessage()]) == 3
    assert max(len(record.getMessage()) for record in caplog.records) < 400


async def test_unread_errors_are_dropped_oldest_first_and_counted() -> None:
    wired = wire(JsonCodec(Message), errors_channel_buffer=2)
    for index in range(5):
        wired.connection.feed(f"bad {index}")
    kept = [(await wired.errors.recv()).payload for _ in range(2)]  # type: ignore[attr-defined]
    assert kept == ["bad 3", "bad 4"]
    assert wired.connection.statistics().errors_dropped == 3


# -- writing and closing --------------------------------------------------------------------


async def test_sends_are_written_in_order_and_queued_ones_go_out_before_the_close() -> None:
    wired = wire(send_channel_buffer=3)
    wired.transport.block_writes()
    await wired.sender.send("a")  # written, waiting for the socket
    for item in "bcd":
        await wired.sender.send(item)  # queued
    blocked = asyncio.ensure_future(wired.sender.send("e"))  # the buffer is full: waits
    await turns()
    assert not blocked.done()
    await wired.disconnect.send(CloseCode.GOING_AWAY)
    assert wired.transport.close_code is None  # not before what is queued
    wired.transport.unblock_writes()
    await blocked
    await wired.connection.wait_closed()
    assert list(wired.transport.written) == list("abcde")
    assert wired.transport.close_code == CloseCode.GOING_AWAY


async def test_the_first_close_code_wins_and_later_sends_raise_channel_closed() -> None:
    wired = wire()
    await wired.disconnect.send(CloseCode.POLICY_VIOLATION)
    await wired.disconnect.send(CloseCode.NORMAL_CLOSURE)
    with pytest.raises(ChannelClosed):
        await wired.sender.send("late")
    await wired.connection.wait_closed()
    assert wired.connection.close_code == CloseCode.POLICY_VIOLATION


async def test_a_write_that_outlasts_write_wait_gives_the_connection_up() -> None:
    wired = wire(write_wait=0.05)
    wired.transport.block_writes()
    await wired.sender.send("stuck")
    async with asyncio.timeout(2):
        error = await wired.errors.recv()
    assert isinstance(error, WriteTimeout) and isinstance(error, TimeoutError)
    assert wired.transport.aborted
    assert wired.connection.state is State.CLOSED
    assert wired.connection.close_code == CloseCode.ABNORMAL_CLOSURE


async def test_a_client_that_never_answers_the_close_is_dropped_after_write_wait() -> None:
    wired = wire(write_wait=0.05, transport={"close_reply": False})
    await wired.disconnect.send(CloseCode.NORMAL_CLOSURE)
    async with asyncio.timeout(2):
        await wired.connection.wait_closed()
    assert wired.transport.aborted


async def test_hub_deliveries_share_the_queue_and_the_oldest_can_be_dropped() -> None:
    wired = wire()
    wired.transport.block_writes()
    await wired.sender.send("mine")
    wired.connection.deliver("hub 1", 5)
    wired.connection.deliver("hub 2", 5)
    assert wired.connection.delivered_bytes_queued == 10
    assert wired.connection.drop_oldest_delivered() == 5
    wired.transport.unblock_writes()
    await turns()
    assert list(wired.transport.written) == ["mine", "hub 2"]
    assert wired.connection.delivered_bytes_queued == 0


# -- keepalive ------------------------------------------------------------------------------


async def test_keepalive_pings_every_ping_period_and_a_pong_keeps_the_client() -> None:
    # pong_wait well above ping_period: a loaded machine's stalls must not look like a lost peer.
    wired = wire(keepalive=True, ping_period=0.05, pong_wait=0.5)
    await asyncio.sleep(0.5)
    assert wired.transport.pings >= 5  # ten are due; a stall of a quarter second is allowed
    assert wired.connection.state is State.OPEN


async def test_a_client_that_answers_no_ping_is_gone_after_pong_wait() -> None:
    wired = wire(keepalive=True, transport={"auto_pong": False}, ping_period=0.02, pong_wait=0.05)
    async with asyncio.timeout(2):
        error = await wired.errors.recv()
    assert isinstance(error, KeepaliveTimeout)
    assert wired.transport.aborted and wired.connection.close_code == CloseCode.ABNORMAL_CLOSURE
    assert await wired.done.recv() is True


async def test_messages_keep_a_client_that_does_not_pong_alive() -> None:
    wired = wire(
        keepalive=True,
        transport={"auto_pong": False},
        ping_period=0.02,
        pong_wait=0.08,
        recv_channel_buffer=100,
    )
    for _ in range(15):
        wired.connection.feed("still here")
        await asyncio.sleep(0.02)
    assert wired.connection.state is State.OPEN


# -- a whole handler through the session pipeline -------------------------------------------


async def test_a_handler_runs_on_the_memory_server_and_returning_closes_with_1000() -> None:
    @wschannels.json(Message)
    async def echo(receiver: Receiver[Message], sender: Sender[Message], done: Done) -> None:
        for _ in range(2):
            await sender.send(Message((await receiver.recv()).text.upper()))

    client = await connect_memory(echo, origin=ORIGIN)
    await client.send('{"text": "a"}')
    await client.send('{"text": "b"}')
    assert [await client.receive(), await client.receive()] == ['{"text":"A"}', '{"text":"B"}']
    await client.wait_closed()
    assert client.close_code == CloseCode.NORMAL_CLOSURE


async def test_a_handler_that_raises_closes_with_1011_and_one_that_is_cancelled_with_1001() -> None:
    @wschannels.messages()
    async def broken(done: Done) -> None:
        raise RuntimeError("boom")

    @wschannels.messages()
    async def waits(done: Done) -> None:
        await done.recv()

    client = await connect_memory(broken, origin=ORIGIN)
    await client.wait_closed()
    assert client.close_code == CloseCode.INTERNAL_SERVER_ERR

    client = await connect_memory(waits, origin=ORIGIN)
    await turns()
    client.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await client.task
    assert client.close_code == CloseCode.GOING_AWAY


async def test_the_memory_server_applies_the_origin_check() -> None:
    @wschannels.messages()
    async def handler(done: Done) -> None:
        await done.recv()

    with pytest.raises(PermissionError, match="403"):
        await connect_memory(handler, origin="https://elsewhere.example")
    client = await connect_memory(handler, origin="http://testserver")
    client.close()
    await client.wait_closed()
    assert client.close_code == CloseCode.NORMAL_CLOSURE


async def test_statistics_are_readable_through_done() -> None:
    @wschannels.messages()
    async def echo(receiver: Receiver[str], sender: Sender[str], done: Done) -> None:
        async for message in receiver:
            await sender.send(message)
        stats.append(done.statistics())

    stats: list[wschannels.ConnectionStatistics] = []
    client = await connect_memory(echo, origin=ORIGIN)
    for index in range(3):
        await client.send(f"m{index}")
        await client.receive()
    client.close()
    await client.wait_closed()
    assert stats[0].messages_in == 3 and stats[0].messages_out == 3
    assert stats[0].state is State.CLOSED


# -- rate limits --------------------------------------------------------------------------


async def test_a_client_over_max_messages_per_second_is_closed_with_1008() -> None:
    wired = wire(max_messages_per_second=5, recv_channel_buffer=100)
    for index in range(5):  # a second's worth of burst passes
        wired.connection.feed(f"m{index}")
    assert wired.transport.close_code is None
    wired.connection.feed("one too many")
    error = await wired.errors.recv()
    assert isinstance(error, wschannels.RateLimited)
    assert wired.transport.close_code == CloseCode.POLICY_VIOLATION
    assert [await wired.receiver.recv() for _ in range(5)] == [f"m{i}" for i in range(5)]
    assert len(wired.receiver) == 0  # the message over the limit was not delivered


async def test_a_client_over_max_bytes_per_second_is_closed_with_1008() -> None:
    wired = wire(max_bytes_per_second=100)
    wired.connection.feed("x" * 60)
    assert wired.transport.close_code is None
    wired.connection.feed("x" * 60)
    assert isinstance(await wired.errors.recv(), wschannels.RateLimited)
    assert wired.transport.close_code == CloseCode.POLICY_VIOLATION


async def test_a_client_within_the_rate_limit_is_never_closed() -> None:
    wired = wire(max_messages_per_second=200, recv_channel_buffer=1000)
    for _ in range(30):
        for _ in range(5):
            wired.connection.feed("steady")
        await asyncio.sleep(0.05)  # 100 messages/s, half the limit
    assert wired.connection.state is State.OPEN


def test_a_bad_rate_limit_fails_when_the_options_are_made_naming_the_field() -> None:
    with pytest.raises(ValueError, match="max_messages_per_second"):
        Options(max_messages_per_second=0)
    with pytest.raises(ValueError, match="max_bytes_per_second"):
        Options(max_bytes_per_second=-1)


# -- fairness -------------------------------------------------------------------------------


async def test_a_handler_whose_sends_never_wait_still_lets_the_loop_run() -> None:
    """A socket that takes every frame at once must not let one handler starve the process."""
    wired = wire()
    ticks = 0

    async def flood() -> None:
        while True:
            await select(wschannels.Send(wired.sender, "x"), wired.done)
            wired.transport.written.clear()

    async def clock() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    tasks = [asyncio.ensure_future(flood()), asyncio.ensure_future(clock())]
    await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    assert ticks > 10


async def test_a_receiver_that_is_always_ready_still_lets_the_loop_run() -> None:
    wired = wire(recv_channel_buffer=100_000)
    for index in range(50_000):
        wired.connection.feed(f"m{index}")
    timer_fired = asyncio.Event()
    # Due at once, but it runs only when the loop gets a turn; compiled, 50,000 receives
    # can take less than a millisecond.
    asyncio.get_running_loop().call_later(0, timer_fired.set)
    got = 0
    while got < 50_000 and not timer_fired.is_set():
        await wired.receiver.recv()
        got += 1
    assert timer_fired.is_set() and got < 50_000  # the timer ran while messages were waiting


async def test_a_send_case_of_a_finished_connection_never_fires_and_done_takes_over() -> None:
    """Regression: select(Send(sender, x), done) raised ChannelClosed when the send came first."""
    wired = wire()
    wired.connection.peer_closed(CloseCode.NORMAL_CLOSURE)
    for _ in range(20):  # whichever order select tries the cases in
        chosen, _, _ = await select(wschannels.Send(wired.sender, "late"), wired.done)
        assert chosen is wired.done
    with pytest.raises(ChannelClosed):
        await wired.sender.send("late")  # a lone send still says why it cannot go


async def test_a_select_blocked_on_a_full_send_buffer_ends_with_done_when_the_client_goes() -> None:
    wired = wire(send_channel_buffer=0)
    wired.transport.block_writes()
    await wired.sender.send("written, waiting for the socket")
    blocked = asyncio.ensure_future(select(wschannels.Send(wired.sender, "x"), wired.done))
    await turns()
    wired.connection.peer_closed(CloseCode.ABNORMAL_CLOSURE)
    chosen, _, _ = await asyncio.wait_for(blocked, 2)
    assert chosen is wired.done
