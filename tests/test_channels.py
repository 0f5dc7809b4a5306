"""Specification of ``wschannels.channels``: Go's channel and select semantics on asyncio."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from wschannels.channels import (
    Channel,
    ChannelClosed,
    ChannelStatistics,
    Send,
    WouldBlock,
    after,
    select,
    ticker,
    try_select,
)

# -- helpers ----------------------------------------------------------------------------


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let other tasks run until ``condition`` holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0)


async def blocked(channel: Channel[Any], receivers: int = 0, senders: int = 0) -> None:
    """Wait until exactly that many tasks wait on ``channel``."""

    def reached() -> bool:
        stats = channel.statistics()
        return stats.waiting_receivers == receivers and stats.waiting_senders == senders

    await until(reached)


def assert_no_waiters(*channels: Channel[Any]) -> None:
    for channel in channels:
        stats = channel.statistics()
        assert (stats.waiting_receivers, stats.waiting_senders) == (0, 0), channel


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class Payload:
    """An item whose lifetime a test can watch through a weak reference."""


async def collected(ref: weakref.ref[Payload]) -> bool:
    """Whether the item goes away once the loop settled (it may hold a step's leftovers)."""

    def gone() -> bool:
        gc.collect()
        return ref() is None

    try:
        await until(gone, timeout=1.0)
    except TimeoutError:
        return False
    return True


# -- construction -----------------------------------------------------------------------


def test_capacity_defaults_to_zero_which_is_unbuffered() -> None:
    channel: Channel[int] = Channel()
    assert channel.capacity == 0
    with pytest.raises(WouldBlock):
        channel.send_nowait(1)


@pytest.mark.parametrize("capacity", [-1, -10, 1.5, "1"])
def test_capacity_must_be_an_int_of_zero_or_more(capacity: Any) -> None:
    with pytest.raises(ValueError, match="capacity"):
        Channel(capacity)


# -- unbuffered: rendezvous -------------------------------------------------------------


async def test_unbuffered_send_completes_only_when_a_receiver_takes_the_item() -> None:
    channel: Channel[str] = Channel()
    sender = asyncio.create_task(channel.send("hello"))
    await blocked(channel, senders=1)
    assert not sender.done()
    assert len(channel) == 0  # the item waits with its sender, not in the channel

    assert await channel.recv() == "hello"
    await asyncio.wait_for(sender, 5)
    assert_no_waiters(channel)


async def test_unbuffered_recv_waits_for_a_sender() -> None:
    channel: Channel[str] = Channel()
    receiver = asyncio.create_task(channel.recv())
    await blocked(channel, receivers=1)
    assert not receiver.done()

    channel.send_nowait("hello")  # a waiting receiver takes it at once
    assert await asyncio.wait_for(receiver, 5) == "hello"
    assert_no_waiters(channel)


async def test_unbuffered_recv_nowait_takes_the_item_of_a_blocked_sender() -> None:
    channel: Channel[int] = Channel()
    sender = asyncio.create_task(channel.send(7))
    await blocked(channel, senders=1)

    assert channel.recv_nowait() == 7
    await asyncio.wait_for(sender, 5)
    with pytest.raises(WouldBlock):
        channel.recv_nowait()


async def test_unbuffered_senders_are_served_in_the_order_they_blocked() -> None:
    channel: Channel[int] = Channel()
    senders = []
    for item in range(5):
        senders.append(asyncio.create_task(channel.send(item)))
        await blocked(channel, senders=item + 1)

    assert [await channel.recv() for _ in range(5)] == [0, 1, 2, 3, 4]
    await asyncio.wait_for(asyncio.gather(*senders), 5)


async def test_unbuffered_receivers_are_served_in_the_order_they_blocked() -> None:
    channel: Channel[int] = Channel()
    receivers = []
    for count in range(3):
        receivers.append(asyncio.create_task(channel.recv()))
        await blocked(channel, receivers=count + 1)

    for item in range(3):
        channel.send_nowait(item)
    assert await asyncio.wait_for(asyncio.gather(*receivers), 5) == [0, 1, 2]


def test_recv_nowait_on_an_empty_channel_raises_would_block() -> None:
    for capacity in (0, 3):
        with pytest.raises(WouldBlock):
            Channel[int](capacity).recv_nowait()


# -- buffered ---------------------------------------------------------------------------


async def test_buffered_sends_complete_without_a_receiver_up_to_capacity() -> None:
    channel: Channel[int] = Channel(3)
    for item in range(3):
        await asyncio.wait_for(channel.send(item), 5)
    assert len(channel) == 3
    with pytest.raises(WouldBlock):
        channel.send_nowait(3)
    assert len(channel) == 3


async def test_send_on_a_full_channel_waits_until_a_receive_frees_a_slot() -> None:
    channel: Channel[int] = Channel(1)
    channel.send_nowait(1)
    sender = asyncio.create_task(channel.send(2))
    await blocked(channel, senders=1)
    assert not sender.done()

    assert channel.recv_nowait() == 1
    await asyncio.wait_for(sender, 5)  # its item took the freed slot
    assert len(channel) == 1
    assert channel.recv_nowait() == 2


async def test_items_are_received_in_the_order_they_were_sent() -> None:
    channel: Channel[int] = Channel(2)
    sender_done = asyncio.create_task(_send_all(channel, range(10)))
    received = [await channel.recv() for _ in range(10)]
    await asyncio.wait_for(sender_done, 5)
    assert received == list(range(10))


async def _send_all(channel: Channel[int], items: range) -> None:
    for item in items:
        await channel.send(item)


def test_len_counts_the_buffered_items() -> None:
    channel: Channel[str] = Channel(5)
    assert len(channel) == 0
    channel.send_nowait("a")
    channel.send_nowait("b")
    assert len(channel) == 2
    channel.recv_nowait()
    assert len(channel) == 1


async def test_statistics_report_capacity_buffer_waiters_and_state() -> None:
    channel: Channel[int] = Channel(1)
    assert channel.statistics() == ChannelStatistics(1, 0, 0, 0, False)

    channel.send_nowait(1)
    senders = [asyncio.create_task(channel.send(item)) for item in (2, 3)]
    await blocked(channel, senders=2)
    assert channel.statistics() == ChannelStatistics(
        capacity=1, buffered=1, waiting_receivers=0, waiting_senders=2, closed=False
    )

    for _ in range(3):
        channel.recv_nowait()
    await asyncio.wait_for(asyncio.gather(*senders), 5)
    receiver = asyncio.create_task(channel.recv())
    await blocked(channel, receivers=1)
    assert channel.statistics() == ChannelStatistics(1, 0, 1, 0, False)

    channel.close()
    await asyncio.gather(receiver, return_exceptions=True)
    assert channel.statistics() == ChannelStatistics(1, 0, 0, 0, True)


# -- close ------------------------------------------------------------------------------


def test_close_is_idempotent_and_sets_closed() -> None:
    channel: Channel[int] = Channel(2)
    channel.send_nowait(1)
    assert not channel.closed
    channel.close()
    channel.close()
    assert channel.closed
    assert channel.recv_nowait() == 1  # the second close did not drop anything
    with pytest.raises(ChannelClosed):
        channel.recv_nowait()


async def test_receivers_drain_buffered_items_after_close_then_get_channel_closed() -> None:
    channel: Channel[int] = Channel(3)
    for item in range(3):
        channel.send_nowait(item)
    channel.close()

    assert channel.recv_nowait() == 0
    assert await channel.recv() == 1
    assert try_select(channel) == (channel, 2, True)
    with pytest.raises(ChannelClosed):
        await channel.recv()
    with pytest.raises(ChannelClosed):
        channel.recv_nowait()
    assert await select(channel) == (channel, None, False)  # and it stays that way
    assert try_select(channel) == (channel, None, False)


async def test_send_on_a_closed_channel_raises_channel_closed() -> None:
    channel: Channel[int] = Channel(3)
    channel.close()
    with pytest.raises(ChannelClosed):
        await channel.send(1)
    with pytest.raises(ChannelClosed):
        channel.send_nowait(1)
    with pytest.raises(ChannelClosed):
        await select(Send(channel, 1))
    with pytest.raises(ChannelClosed):
        try_select(Send(channel, 1))
    assert len(channel) == 0


async def test_close_ends_blocked_receivers() -> None:
    channel: Channel[int] = Channel()
    receivers = [asyncio.create_task(channel.recv()) for _ in range(2)]
    selector = asyncio.create_task(select(channel, Channel[int]()))
    await blocked(channel, receivers=3)

    channel.close()
    for receiver in receivers:
        with pytest.raises(ChannelClosed):
            await asyncio.wait_for(receiver, 5)
    assert await asyncio.wait_for(selector, 5) == (channel, None, False)
    assert_no_waiters(channel)


@pytest.mark.parametrize("capacity", [0, 1])
async def test_close_fails_blocked_senders_and_drops_their_items(capacity: int) -> None:
    channel: Channel[str] = Channel(capacity)
    if capacity:
        channel.send_nowait("buffered")
    sender = asyncio.create_task(channel.send("blocked"))
    selecting = asyncio.create_task(select(Send(channel, "selected"), Channel[int]()))
    await blocked(channel, senders=2)

    channel.close()
    with pytest.raises(ChannelClosed):
        await asyncio.wait_for(sender, 5)
    with pytest.raises(ChannelClosed):
        await asyncio.wait_for(selecting, 5)
    drained = [item async for item in channel]
    assert drained == (["buffered"] if capacity else [])
    assert_no_waiters(channel)


async def test_async_for_yields_every_item_then_ends_on_close() -> None:
    channel: Channel[int] = Channel(2)

    async def produce() -> None:
        for item in range(6):
            await channel.send(item)
        channel.close()

    producer = asyncio.create_task(produce())
    received = [item async for item in channel]
    await asyncio.wait_for(producer, 5)
    assert received == list(range(6))


async def test_async_for_over_a_closed_channel_drains_what_is_buffered() -> None:
    channel: Channel[int] = Channel(3)
    for item in (1, 2, 3):
        channel.send_nowait(item)
    channel.close()
    assert [item async for item in channel] == [1, 2, 3]
    assert [item async for item in channel] == []


# -- select -----------------------------------------------------------------------------


async def test_select_returns_the_very_channel_passed_as_the_case() -> None:
    first: Channel[str] = Channel(1)
    second: Channel[str] = Channel(1)
    second.send_nowait("item")
    chosen, value, ok = await select(first, second)
    assert chosen is second
    assert (value, ok) == ("item", True)


async def test_select_returns_the_very_send_object_passed_as_the_case() -> None:
    channel: Channel[str] = Channel(1)
    case = Send(channel, "item")
    chosen, value, ok = await select(case, Channel[str]())
    assert chosen is case
    assert (value, ok) == (None, True)
    assert channel.recv_nowait() == "item"


async def test_select_send_case_waits_for_a_receiver_on_an_unbuffered_channel() -> None:
    channel: Channel[str] = Channel()
    case = Send(channel, "item")
    selecting = asyncio.create_task(select(case))
    await blocked(channel, senders=1)
    assert not selecting.done()

    assert await channel.recv() == "item"
    assert await asyncio.wait_for(selecting, 5) == (case, None, True)


async def test_select_send_case_hands_the_item_to_a_waiting_receiver() -> None:
    channel: Channel[str] = Channel()
    receiver = asyncio.create_task(channel.recv())
    await blocked(channel, receivers=1)
    case = Send(channel, "item")
    assert await select(case) == (case, None, True)
    assert await asyncio.wait_for(receiver, 5) == "item"


@pytest.mark.parametrize("ready", ["send", "receive"])
async def test_mixed_select_performs_whichever_case_becomes_ready(ready: str) -> None:
    outbox: Channel[str] = Channel()
    inbox: Channel[str] = Channel()
    send_case = Send(outbox, "out")
    selecting = asyncio.create_task(select(send_case, inbox))
    await blocked(outbox, senders=1)
    await blocked(inbox, receivers=1)

    if ready == "send":
        assert outbox.recv_nowait() == "out"
        assert await asyncio.wait_for(selecting, 5) == (send_case, None, True)
        with pytest.raises(WouldBlock):
            inbox.send_nowait("in")  # the receive case is no longer waiting
    else:
        inbox.send_nowait("in")
        assert await asyncio.wait_for(selecting, 5) == (inbox, "in", True)
        with pytest.raises(WouldBlock):
            outbox.recv_nowait()  # the send case did not happen
    assert_no_waiters(outbox, inbox)


async def test_select_performs_exactly_one_case_when_several_are_ready() -> None:
    channels: list[Channel[int]] = [Channel(1) for _ in range(3)]
    for index, channel in enumerate(channels):
        channel.send_nowait(index)
    room: Channel[int] = Channel(1)
    send_case = Send(room, 9)
    for _ in range(20):
        chosen, value, _ = await select(*channels, send_case)
        if chosen is send_case:
            assert [len(channel) for channel in channels] == [1, 1, 1]
            assert room.recv_nowait() == 9
        else:
            assert len(room) == 0
            assert value == channels.index(chosen)
            assert sum(len(channel) for channel in channels) == 2
            chosen.send_nowait(value)


@pytest.mark.parametrize(
    ("cases", "ready"),
    [(2, (0, 1)), (3, (0, 1)), (3, (0, 2)), (4, (1, 3)), (5, (0, 2, 4)), (7, (1, 5))],
)
def test_select_chooses_uniformly_among_the_ready_cases(cases: int, ready: tuple[int, ...]) -> None:
    channels: list[Channel[int]] = [Channel(1) for _ in range(cases)]
    trials = 3000
    picks: Counter[int] = Counter()
    for _ in range(trials):
        for index in ready:
            if not len(channels[index]):
                channels[index].send_nowait(index)
        result = try_select(*channels)
        assert result is not None
        picks[result.value] += 1
    assert set(picks) == set(ready)
    share = trials / len(ready)
    # Go picks uniformly. The bounds are many standard deviations wide: never flaky,
    # yet a rotation from a random start (2/3 vs 1/3) falls outside them.
    for index in ready:
        assert 0.8 * share < picks[index] < 1.2 * share, picks


def test_select_chooses_fairly_between_a_ready_send_and_a_ready_receive() -> None:
    room: Channel[int] = Channel(1)
    inbox: Channel[int] = Channel(1)
    case = Send(room, 1)
    picks: Counter[str] = Counter()
    for _ in range(2000):
        if not len(inbox):
            inbox.send_nowait(2)
        result = try_select(case, inbox)
        assert result is not None
        picks["send" if result.channel is case else "receive"] += 1
        if len(room):
            room.recv_nowait()
    assert picks["send"] > 600
    assert picks["receive"] > 600


async def test_biased_select_picks_the_first_ready_case_in_argument_order() -> None:
    channels: list[Channel[int]] = [Channel(1) for _ in range(3)]
    for _ in range(200):
        channels[1].send_nowait(1)
        channels[2].send_nowait(2)
        assert try_select(*channels, biased=True) == (channels[1], 1, True)
        assert channels[2].recv_nowait() == 2
    channels[1].send_nowait(1)
    channels[2].send_nowait(2)
    assert await select(channels[2], channels[1], biased=True) == (channels[2], 2, True)


async def test_try_select_returns_none_when_nothing_is_ready_and_registers_nothing() -> None:
    unbuffered: Channel[int] = Channel()
    empty: Channel[int] = Channel(1)
    full: Channel[int] = Channel(1)
    full.send_nowait(0)
    assert try_select(unbuffered, empty, Send(unbuffered, 1), Send(full, 2)) is None
    assert_no_waiters(unbuffered, empty, full)
    assert full.recv_nowait() == 0
    with pytest.raises(WouldBlock):
        full.recv_nowait()  # the send case did not happen later either
    receiver = asyncio.create_task(unbuffered.recv())
    await blocked(unbuffered, receivers=1)
    unbuffered.send_nowait(3)
    assert await asyncio.wait_for(receiver, 5) == 3


async def test_try_select_performs_a_ready_case() -> None:
    inbox: Channel[int] = Channel(1)
    inbox.send_nowait(5)
    assert try_select(Channel[int](), inbox) == (inbox, 5, True)


@pytest.mark.parametrize("woken_by", [0, 1, 2])
async def test_select_on_several_channels_is_woken_by_any_and_leaves_no_waiter_behind(
    woken_by: int,
) -> None:
    channels: list[Channel[int]] = [Channel() for _ in range(3)]
    selecting = asyncio.create_task(select(*channels))
    for channel in channels:
        await blocked(channel, receivers=1)

    channels[woken_by].send_nowait(42)
    assert await asyncio.wait_for(selecting, 5) == (channels[woken_by], 42, True)
    assert_no_waiters(*channels)
    for channel in channels:  # nobody is left to take an item
        with pytest.raises(WouldBlock):
            channel.send_nowait(0)


async def test_repeated_selects_do_not_pile_up_registrations_on_idle_channels() -> None:
    busy: Channel[int] = Channel()
    idle: Channel[int] = Channel()

    async def consume(count: int) -> None:
        for _ in range(count):
            await select(busy, idle)

    consumer = asyncio.create_task(consume(100))
    for item in range(100):
        await busy.send(item)
    await asyncio.wait_for(consumer, 5)
    assert_no_waiters(busy, idle)
    with pytest.raises(WouldBlock):
        idle.send_nowait(0)


async def test_finished_select_keeps_nothing_registered_on_its_other_channels() -> None:
    # Registrations left behind would hold every item a select loop ever handled.
    busy: Channel[Payload] = Channel()
    idle: Channel[Payload] = Channel()
    received = Payload()
    offered = Payload()
    received_ref, offered_ref = weakref.ref(received), weakref.ref(offered)

    selecting = asyncio.create_task(select(busy, idle, Send(idle, offered)))
    await blocked(busy, receivers=1)
    busy.send_nowait(received)
    assert (await asyncio.wait_for(selecting, 5)).value is received
    del selecting, received, offered
    assert await collected(received_ref)
    assert await collected(offered_ref)


async def test_select_with_a_send_and_a_receive_on_one_channel_does_not_meet_itself() -> None:
    channel: Channel[int] = Channel()
    case = Send(channel, 1)
    assert try_select(case, channel) is None
    selecting = asyncio.create_task(select(case, channel))
    await blocked(channel, receivers=1, senders=1)
    await asyncio.sleep(0)
    assert not selecting.done()

    assert channel.recv_nowait() == 1
    assert await asyncio.wait_for(selecting, 5) == (case, None, True)
    assert_no_waiters(channel)


async def test_select_on_a_closed_channel_returns_ok_false() -> None:
    closed: Channel[int] = Channel()
    closed.close()
    assert await select(closed, Channel[int]()) == (closed, None, False)
    assert try_select(closed) == (closed, None, False)


async def test_select_without_cases_raises_value_error() -> None:
    with pytest.raises(ValueError):
        await select()
    with pytest.raises(ValueError):
        try_select()


@pytest.mark.parametrize("case", [42, "channel", None, Send(object(), 1)])
async def test_select_with_a_case_that_is_not_a_channel_raises_type_error(case: Any) -> None:
    channel: Channel[int] = Channel(1)
    channel.send_nowait(1)
    with pytest.raises(TypeError):
        await select(channel, case)
    with pytest.raises(TypeError):
        try_select(channel, case)
    assert len(channel) == 1  # checked before any case is performed


# -- cancellation while waiting ---------------------------------------------------------


async def test_cancelled_recv_leaves_no_waiter_and_takes_no_later_item() -> None:
    channel: Channel[int] = Channel()
    receiver = asyncio.create_task(channel.recv())
    await blocked(channel, receivers=1)
    await cancel_and_wait(receiver)

    assert_no_waiters(channel)
    with pytest.raises(WouldBlock):
        channel.send_nowait(1)  # no ghost receiver swallows it
    other = asyncio.create_task(channel.recv())
    await blocked(channel, receivers=1)
    channel.send_nowait(2)
    assert await asyncio.wait_for(other, 5) == 2


async def test_cancelled_send_on_a_full_channel_leaves_no_waiter_and_delivers_nothing() -> None:
    channel: Channel[int] = Channel(1)
    channel.send_nowait(1)
    sender = asyncio.create_task(channel.send(2))
    await blocked(channel, senders=1)
    await cancel_and_wait(sender)

    assert_no_waiters(channel)
    assert channel.recv_nowait() == 1
    with pytest.raises(WouldBlock):
        channel.recv_nowait()


async def test_cancelled_unbuffered_send_leaves_no_waiter_and_delivers_nothing() -> None:
    channel: Channel[int] = Channel()
    sender = asyncio.create_task(channel.send(1))
    await blocked(channel, senders=1)
    await cancel_and_wait(sender)

    assert_no_waiters(channel)
    with pytest.raises(WouldBlock):
        channel.recv_nowait()


async def test_cancelled_select_leaves_no_waiter_on_any_of_its_channels() -> None:
    inboxes: list[Channel[int]] = [Channel(), Channel(1)]
    outbox: Channel[int] = Channel()
    selecting = asyncio.create_task(select(*inboxes, Send(outbox, 9)))
    await blocked(outbox, senders=1)
    await cancel_and_wait(selecting)

    assert_no_waiters(outbox, *inboxes)
    with pytest.raises(WouldBlock):
        inboxes[0].send_nowait(1)
    inboxes[1].send_nowait(1)
    assert len(inboxes[1]) == 1  # it went to the buffer, not to the cancelled select
    with pytest.raises(WouldBlock):
        outbox.recv_nowait()


async def test_cancelled_select_keeps_no_reference_to_its_items() -> None:
    channel: Channel[Payload] = Channel()
    offered = Payload()
    offered_ref = weakref.ref(offered)
    selecting = asyncio.create_task(select(channel, Send(channel, offered)))
    await blocked(channel, receivers=1, senders=1)
    await cancel_and_wait(selecting)
    del selecting, offered
    assert await collected(offered_ref)


# -- cancellation after an item was handed over, before the task resumed -----------------


@pytest.mark.parametrize("capacity", [0, 2])
async def test_item_handed_to_a_receiver_cancelled_before_it_resumed_goes_back(
    capacity: int,
) -> None:
    channel: Channel[str] = Channel(capacity)
    receiver = asyncio.create_task(channel.recv())
    await blocked(channel, receivers=1)

    channel.send_nowait("item")  # handed to the waiting receiver...
    receiver.cancel()  # ...which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await receiver

    assert channel.recv_nowait() == "item"
    with pytest.raises(WouldBlock):
        channel.recv_nowait()
    assert_no_waiters(channel)


async def test_item_put_back_goes_to_the_next_waiting_receiver() -> None:
    channel: Channel[str] = Channel()
    first = asyncio.create_task(channel.recv())
    await blocked(channel, receivers=1)
    second = asyncio.create_task(channel.recv())
    await blocked(channel, receivers=2)

    channel.send_nowait("item")
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 5) == "item"
    assert_no_waiters(channel)


async def test_item_put_back_stays_ahead_of_items_sent_after_it() -> None:
    channel: Channel[int] = Channel(2)
    receiver = asyncio.create_task(channel.recv())
    await blocked(channel, receivers=1)

    channel.send_nowait(1)  # handed to the receiver
    channel.send_nowait(2)  # buffered
    channel.send_nowait(3)  # buffered
    await cancel_and_wait(receiver)
    assert [channel.recv_nowait() for _ in range(3)] == [1, 2, 3]


async def test_items_stay_in_order_when_a_receive_is_cancelled_while_another_was_handed_one() -> (
    None
):
    channel: Channel[int] = Channel()
    received: list[int] = []

    async def receive_two() -> None:
        received.append(await channel.recv())
        received.append(await channel.recv())

    cancelled = asyncio.create_task(channel.recv())
    await blocked(channel, receivers=1)
    steady = asyncio.create_task(receive_two())
    await blocked(channel, receivers=2)

    channel.send_nowait(1)  # handed to the receive that will be cancelled
    channel.send_nowait(2)  # handed to the steady receiver
    await cancel_and_wait(cancelled)
    await asyncio.wait_for(steady, 5)
    assert received == [1, 2]


async def test_items_stay_in_order_when_a_receive_completes_at_once_in_that_window() -> None:
    channel: Channel[int] = Channel(1)
    receiver = asyncio.create_task(channel.recv())
    await blocked(channel, receivers=1)

    channel.send_nowait(1)  # handed to the waiting receiver
    channel.send_nowait(2)  # buffered
    first = channel.recv_nowait()
    await cancel_and_wait(receiver)
    assert [first, channel.recv_nowait()] == [1, 2]


async def test_item_handed_to_a_cancelled_select_goes_back_to_its_own_channel() -> None:
    channels: list[Channel[str]] = [Channel(), Channel(), Channel()]
    selecting = asyncio.create_task(select(*channels))
    await blocked(channels[1], receivers=1)

    channels[1].send_nowait("item")
    await cancel_and_wait(selecting)

    assert_no_waiters(*channels)
    assert channels[1].recv_nowait() == "item"
    assert [len(channel) for channel in channels] == [0, 0, 0]


async def test_item_put_back_into_a_channel_closed_meanwhile_is_received_before_the_end() -> None:
    channel: Channel[str] = Channel()
    receiver = asyncio.create_task(channel.recv())
    await blocked(channel, receivers=1)

    channel.send_nowait("item")
    channel.close()
    await cancel_and_wait(receiver)
    assert [item async for item in channel] == ["item"]


async def test_receiver_woken_by_close_takes_an_item_put_back_before_it_resumed() -> None:
    channel: Channel[str] = Channel()
    cancelled = asyncio.create_task(channel.recv())
    await blocked(channel, receivers=1)
    waiting = asyncio.create_task(channel.recv())
    await blocked(channel, receivers=2)

    channel.send_nowait("item")  # handed to the first receiver
    channel.close()  # the second is told the channel is over
    await cancel_and_wait(cancelled)
    assert await asyncio.wait_for(waiting, 5) == "item"
    with pytest.raises(ChannelClosed):
        channel.recv_nowait()


async def test_unbuffered_send_still_waits_for_its_receiver_after_an_item_was_put_back() -> None:
    channel: Channel[str] = Channel()
    receiver = asyncio.create_task(channel.recv())
    await blocked(channel, receivers=1)
    channel.send_nowait("first")
    await cancel_and_wait(receiver)  # "first" goes back into the channel

    sender = asyncio.create_task(channel.send("second"))
    await blocked(channel, senders=1)
    assert channel.recv_nowait() == "first"
    await asyncio.sleep(0)
    assert not sender.done()  # nobody has taken "second" yet
    assert len(channel) == 0
    assert channel.recv_nowait() == "second"
    await asyncio.wait_for(sender, 5)


# -- cancellation after a send was taken, before the sender resumed ----------------------


async def _stay_blocked() -> None:
    await asyncio.Event().wait()


@pytest.mark.parametrize("next_wait", ["sleep(0)", "future", "recv"])
async def test_send_taken_as_its_task_is_cancelled_stands_and_the_task_is_cancelled_next(
    next_wait: str,
) -> None:
    channel: Channel[str] = Channel()
    steps: list[str] = []

    async def send_then_wait() -> None:
        await channel.send("item")
        steps.append("sent")
        if next_wait == "sleep(0)":
            await asyncio.sleep(0)
        elif next_wait == "future":
            await _stay_blocked()
        else:
            await Channel[int]().recv()
        steps.append("not cancelled")

    sender = asyncio.create_task(send_then_wait())
    await blocked(channel, senders=1)
    assert channel.recv_nowait() == "item"  # the receiver has it...
    sender.cancel()  # ...and the sender is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(sender, 5)

    assert sender.cancelled()
    assert steps == ["sent"]
    with pytest.raises(WouldBlock):
        channel.recv_nowait()  # received exactly once
    assert_no_waiters(channel)


async def test_send_taken_from_a_full_channel_as_its_task_is_cancelled_stays_delivered() -> None:
    channel: Channel[str] = Channel(1)
    channel.send_nowait("first")
    sender = asyncio.create_task(channel.send("second"))
    await blocked(channel, senders=1)

    assert channel.recv_nowait() == "first"  # frees the slot: "second" moves in
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    assert channel.recv_nowait() == "second"
    with pytest.raises(WouldBlock):
        channel.recv_nowait()
    assert_no_waiters(channel)


async def test_select_whose_send_was_taken_as_it_is_cancelled_returns_the_send_case() -> None:
    outbox: Channel[str] = Channel()
    inbox: Channel[str] = Channel()
    case = Send(outbox, "item")
    results: list[Any] = []

    async def select_then_wait() -> None:
        results.append(await select(inbox, case))
        await _stay_blocked()

    selecting = asyncio.create_task(select_then_wait())
    await blocked(outbox, senders=1)
    assert outbox.recv_nowait() == "item"
    selecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(selecting, 5)
    assert results == [(case, None, True)]
    assert_no_waiters(outbox, inbox)


async def test_task_that_ends_right_after_a_send_that_beat_its_cancellation_returns() -> None:
    # The send happened, and the task never waits again: it returns, as a task
    # that catches CancelledError would, instead of hiding that the item left.
    channel: Channel[str] = Channel()
    case = Send(channel, "item")
    selecting = asyncio.create_task(select(case))
    await blocked(channel, senders=1)
    assert channel.recv_nowait() == "item"
    selecting.cancel()
    assert await asyncio.wait_for(selecting, 5) == (case, None, True)


# -- timeouts ---------------------------------------------------------------------------


async def test_timeout_around_recv_raises_timeout_error_and_loses_nothing() -> None:
    channel: Channel[int] = Channel(1)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await channel.recv()
    assert_no_waiters(channel)
    channel.send_nowait(1)
    assert channel.recv_nowait() == 1


async def test_wait_for_around_recv_and_select_raises_timeout_error_and_loses_nothing() -> None:
    first: Channel[int] = Channel()
    second: Channel[int] = Channel()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(first.recv(), 0.01)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(select(first, second, Send(second, 1)), 0.01)
    assert_no_waiters(first, second)
    with pytest.raises(WouldBlock):
        first.send_nowait(1)
    with pytest.raises(WouldBlock):
        second.recv_nowait()


async def test_timeout_expiring_as_an_item_arrives_puts_the_item_back() -> None:
    channel: Channel[str] = Channel()
    scopes: list[asyncio.Timeout] = []

    async def receive_with_timeout() -> str:
        async with asyncio.timeout(None) as scope:
            scopes.append(scope)
            return await channel.recv()

    receiver = asyncio.create_task(receive_with_timeout())
    await blocked(channel, receivers=1)
    scopes[0].reschedule(asyncio.get_running_loop().time())  # expires in this loop step...
    channel.send_nowait("item")  # ...after the item was handed over
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(receiver, 5)
    assert channel.recv_nowait() == "item"
    assert_no_waiters(channel)


async def test_timeout_expiring_as_a_send_completes_leaves_no_cancellation_behind() -> None:
    channel: Channel[str] = Channel()
    scopes: list[asyncio.Timeout] = []
    steps: list[str] = []

    async def send_with_timeout() -> None:
        async with asyncio.timeout(None) as scope:
            scopes.append(scope)
            await channel.send("item")
        steps.append("block exited")
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        steps.append("still running")

    sender = asyncio.create_task(send_with_timeout())
    await blocked(channel, senders=1)
    scopes[0].reschedule(asyncio.get_running_loop().time())
    assert channel.recv_nowait() == "item"
    await asyncio.wait_for(sender, 5)
    assert steps == ["block exited", "still running"]


# -- after and ticker -------------------------------------------------------------------


async def test_after_delivers_the_loop_time_once() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    timer = after(0.02)
    fired = await asyncio.wait_for(timer.recv(), 5)
    assert isinstance(fired, float)
    assert fired >= start + 0.02 - 0.001
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(timer.recv(), 0.05)


async def test_after_works_as_a_select_case() -> None:
    never: Channel[int] = Channel()
    timer = after(0.01)
    chosen, value, ok = await asyncio.wait_for(select(never, timer), 5)
    assert chosen is timer
    assert ok and isinstance(value, float)
    assert_no_waiters(never)


async def test_after_rejects_negative_seconds() -> None:
    with pytest.raises(ValueError):
        after(-1)


async def test_ticker_ticks_repeatedly_with_increasing_times() -> None:
    with ticker(0.01) as ticks:
        assert ticks.period == 0.01
        received = [await asyncio.wait_for(ticks.recv(), 5) for _ in range(3)]
    assert all(isinstance(tick, float) for tick in received)
    assert received == sorted(received)
    assert len(set(received)) == 3


async def test_ticker_holds_at_most_one_tick_while_nobody_reads() -> None:
    loop = asyncio.get_running_loop()
    with ticker(0.005) as ticks:
        await until(lambda: len(ticks) == 1)
        seen_at = loop.time()
        await asyncio.sleep(0.05)  # about ten periods pass unread
        assert len(ticks) == 1
        pending = ticks.recv_nowait()
        assert pending <= seen_at  # the first pending tick was kept, later ones dropped
        with pytest.raises(WouldBlock):
            ticks.recv_nowait()
        assert await asyncio.wait_for(ticks.recv(), 5) > seen_at


async def test_ticker_stop_stops_ticking() -> None:
    ticks = ticker(0.005)
    await asyncio.wait_for(ticks.recv(), 5)
    ticks.stop()
    ticks.stop()  # idempotent
    try:
        ticks.recv_nowait()  # a tick that was already pending may remain
    except WouldBlock:
        pass
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ticks.recv(), 0.05)


async def test_ticker_used_as_a_context_manager_stops_on_exit() -> None:
    with ticker(0.005) as ticks:
        await asyncio.wait_for(ticks.recv(), 5)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            while True:  # at most one tick was pending when it stopped
                await ticks.recv()
    assert len(ticks) == 0


async def test_ticker_works_as_a_select_case() -> None:
    never: Channel[int] = Channel()
    with ticker(0.005) as ticks:
        for _ in range(3):
            chosen, value, ok = await asyncio.wait_for(select(never, ticks), 5)
            assert chosen is ticks
            assert ok and isinstance(value, float)
    assert_no_waiters(never)


async def test_closing_a_ticker_stops_it_and_ends_its_receivers() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    ticks = ticker(0.005)
    await asyncio.wait_for(ticks.recv(), 5)
    ticks.close()
    await asyncio.sleep(0.03)  # several periods: a live timer would fire meanwhile
    assert len([item async for item in ticks]) <= 1  # a tick pending at close is kept
    with pytest.raises(ChannelClosed):
        await ticks.recv()
    assert errors == []


@pytest.mark.parametrize("period", [0, -1])
async def test_ticker_rejects_a_period_that_is_not_positive(period: float) -> None:
    with pytest.raises(ValueError):
        ticker(period)
