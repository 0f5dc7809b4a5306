"""Properties of channels and select under random interleavings, cancellations and closes.

Hypothesis draws a script of operations; one event loop runs it step by step:
tasks that send, receive or select over several channels, the test's own
``*_nowait`` and ``try_select`` calls, cancellations and closes, with explicit
``sleep(0)`` steps between some of them. Operations that follow each other
without a step run in the same loop step, which is where the hard cases are:
an item handed to a receiver that is cancelled before it resumes, a blocked
sender whose item is taken as it is cancelled. So the test's own operations
may cancel, in the same step, a task that waits on the channel they just used.

Then every channel is closed, everything is drained, and the outcome is checked
against Go's rules: nothing lost or duplicated, each sender's items in order on
each channel, no waiter left behind, and the end seen only once a channel is
drained. A second property runs scripts on one crowded channel, where receivers
queue up and those windows come up far more often.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wschannels.channels import Channel, ChannelClosed, Send, WouldBlock, select, try_select

Item = tuple[int, int]  # (sender, sequence number): unique, and ordered per sender

# -- the script -------------------------------------------------------------------------


@dataclass(frozen=True)
class SpawnSender:
    """A task that sends ``count`` items, by select over ``channels`` when several."""

    channels: tuple[int, ...]
    count: int


@dataclass(frozen=True)
class SpawnReceiver:
    """A task that receives up to ``count`` times, by select over ``channels`` when several."""

    channels: tuple[int, ...]
    count: int


@dataclass(frozen=True)
class SpawnMixed:
    """A task that selects ``count`` times between sending on one channel and receiving."""

    send_to: int
    receive_from: int
    count: int


# The test's own operations. ``then_cancel`` (when not None) cancels, in the same
# loop step, a task waiting on the channel the operation used: the one it may
# just have handed an item to, or taken one from (by index, oldest first).


@dataclass(frozen=True)
class SendNowait:
    channel: int
    then_cancel: int | None


@dataclass(frozen=True)
class RecvNowait:
    channel: int
    then_cancel: int | None


@dataclass(frozen=True)
class TrySelect:
    send_to: tuple[int, ...]
    receive_from: tuple[int, ...]
    then_cancel: int | None


@dataclass(frozen=True)
class Close:
    channel: int
    then_cancel: int | None


@dataclass(frozen=True)
class Cancel:
    """Cancel a running task, by index, oldest first."""

    task: int


@dataclass(frozen=True)
class Step:
    """Let the loop run: ``count`` times ``await asyncio.sleep(0)``."""

    count: int


Operation = (
    SpawnSender
    | SpawnReceiver
    | SpawnMixed
    | SendNowait
    | RecvNowait
    | TrySelect
    | Close
    | Cancel
    | Step
)


def scripts(channels: int, weights: dict[str, int]) -> st.SearchStrategy[list[Operation]]:
    """Scripts over ``channels`` channels, drawing each kind of operation by ``weights``."""
    ids = st.integers(0, channels - 1)
    sets = st.lists(ids, min_size=1, max_size=channels, unique=True).map(tuple)
    counts = st.integers(1, 4)
    then_cancel = st.none() | st.integers(0, 2)
    kinds: dict[str, st.SearchStrategy[Operation]] = {
        "sender": st.builds(SpawnSender, sets, counts),
        "receiver": st.builds(SpawnReceiver, sets, counts),
        "mixed": st.builds(SpawnMixed, ids, ids, counts),
        "send_nowait": st.builds(SendNowait, ids, then_cancel),
        "recv_nowait": st.builds(RecvNowait, ids, then_cancel),
        "try_select": st.builds(
            TrySelect, st.lists(ids, max_size=2, unique=True).map(tuple), sets, then_cancel
        ),
        "close": st.builds(Close, ids, then_cancel),
        "cancel": st.builds(Cancel, st.integers(0, 5)),
        "step": st.builds(Step, st.integers(1, 3)),
    }
    weighted = [kind for kind, weight in weights.items() for _ in range(weight)]
    operations = st.sampled_from(weighted).flatmap(kinds.__getitem__)
    return st.lists(operations, min_size=10, max_size=50)


# Closes are rare so that channels stay open a while; the crowded channel has more
# receivers than senders, so receivers queue up and hand-offs happen.
SEVERAL_CHANNELS = {
    "sender": 2,
    "receiver": 3,
    "mixed": 2,
    "send_nowait": 3,
    "recv_nowait": 2,
    "try_select": 2,
    "close": 1,
    "cancel": 1,
    "step": 4,
}
CROWDED_CHANNEL = {
    "sender": 1,
    "receiver": 5,
    "mixed": 1,
    "send_nowait": 6,
    "recv_nowait": 2,
    "try_select": 1,
    "close": 1,
    "cancel": 1,
    "step": 6,
}


def capacities(channels: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, 2), min_size=channels, max_size=channels)


# -- running a script -------------------------------------------------------------------


@dataclass
class Run:
    """The channels, the tasks, and what happened, in the order it happened."""

    channels: list[Channel[Item]]
    sent: list[tuple[int, Item]] = field(default_factory=list)
    # ("item", channel, item) or ("end", channel, None), in the order receives completed
    received: list[tuple[str, int, Item | None]] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Per channel, the tasks waiting to receive from it / send on it, oldest first.
    receiving: list[list[asyncio.Task[Any]]] = field(default_factory=list)
    sending: list[list[asyncio.Task[Any]]] = field(default_factory=list)
    next_sender: int = 1

    def __post_init__(self) -> None:
        self.receiving = [[] for _ in self.channels]
        self.sending = [[] for _ in self.channels]

    def index(self, channel: Any) -> int:
        return next(i for i, candidate in enumerate(self.channels) if candidate is channel)

    def new_sender(self) -> Callable[[], Item]:
        """A new sender's item source: (sender, 0), (sender, 1), ..."""
        sender, self.next_sender = self.next_sender, self.next_sender + 1
        numbers = iter(range(1_000_000))
        return lambda: (sender, next(numbers))

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.create_task(coroutine))

    @contextmanager
    def waiting(
        self, receive_from: Iterable[int] = (), send_to: Iterable[int] = ()
    ) -> Iterator[None]:
        """Note the current task as waiting on those channels while the block runs."""
        task = asyncio.current_task()
        assert task is not None
        queues = [self.receiving[i] for i in receive_from] + [self.sending[i] for i in send_to]
        for queue in queues:
            queue.append(task)
        try:
            yield
        finally:
            for queue in queues:
                queue.remove(task)

    def cancel_one_of(self, candidates: list[asyncio.Task[Any]], index: int) -> None:
        running = [task for task in candidates if not task.done()]
        if running:
            running[index % len(running)].cancel()

    def record_receive(self, channel: int, value: Any, ok: bool) -> None:
        self.received.append(("item", channel, value) if ok else ("end", channel, None))


async def sender_task(run: Run, targets: tuple[int, ...], count: int) -> None:
    new_item = run.new_sender()
    for _ in range(count):
        item = new_item()
        try:
            with run.waiting(send_to=targets):
                if len(targets) == 1:
                    await run.channels[targets[0]].send(item)
                    chosen_index = targets[0]
                else:
                    cases = [Send(run.channels[target], item) for target in targets]
                    chosen, _, _ = await select(*cases)
                    chosen_index = run.index(chosen.channel)
        except ChannelClosed:
            return
        run.sent.append((chosen_index, item))


async def receiver_task(run: Run, sources: tuple[int, ...], count: int) -> None:
    open_sources = list(sources)
    for _ in range(count):
        if not open_sources:
            return
        with run.waiting(receive_from=open_sources):
            if len(open_sources) == 1:
                source = open_sources[0]
                try:
                    value, ok = await run.channels[source].recv(), True
                except ChannelClosed:
                    value, ok = None, False
            else:
                chosen, value, ok = await select(*(run.channels[i] for i in open_sources))
                source = run.index(chosen)
        run.record_receive(source, value, ok)
        if not ok:
            open_sources.remove(source)


async def mixed_task(run: Run, send_to: int, receive_from: int, count: int) -> None:
    new_item = run.new_sender()
    for _ in range(count):
        item = new_item()
        case = Send(run.channels[send_to], item)
        try:
            with run.waiting(receive_from=[receive_from], send_to=[send_to]):
                chosen, value, ok = await select(case, run.channels[receive_from])
        except ChannelClosed:
            return
        if chosen is case:
            run.sent.append((send_to, item))
        else:
            run.record_receive(receive_from, value, ok)
            if not ok:
                return


async def execute(script: list[Operation], capacity_of: list[int]) -> Run:
    run = Run([Channel(capacity) for capacity in capacity_of])
    own_item = run.new_sender()  # the test's own sends, in the order it makes them
    for operation in script:
        match operation:
            case SpawnSender(targets, count):
                run.spawn(sender_task(run, targets, count))
            case SpawnReceiver(sources, count):
                run.spawn(receiver_task(run, sources, count))
            case SpawnMixed(send_to, receive_from, count):
                run.spawn(mixed_task(run, send_to, receive_from, count))
            case SendNowait(target, then_cancel):
                item = own_item()
                try:
                    run.channels[target].send_nowait(item)
                except (WouldBlock, ChannelClosed):
                    pass
                else:
                    run.sent.append((target, item))
                if then_cancel is not None:
                    run.cancel_one_of(run.receiving[target], then_cancel)
            case RecvNowait(source, then_cancel):
                try:
                    value = run.channels[source].recv_nowait()
                except WouldBlock:
                    pass
                except ChannelClosed:
                    run.record_receive(source, None, False)
                else:
                    run.record_receive(source, value, True)
                if then_cancel is not None:
                    run.cancel_one_of(run.sending[source], then_cancel)
            case TrySelect(send_to, receive_from, then_cancel):
                item = own_item()
                send_cases = [Send(run.channels[target], item) for target in send_to]
                try:
                    result = try_select(*send_cases, *(run.channels[i] for i in receive_from))
                except ChannelClosed:
                    result = None
                if result is not None and isinstance(result.channel, Send):
                    run.sent.append((run.index(result.channel.channel), item))
                elif result is not None:
                    run.record_receive(run.index(result.channel), result.value, result.ok)
                if then_cancel is not None:
                    peers = [task for i in send_to for task in run.receiving[i]]
                    peers += [task for i in receive_from for task in run.sending[i]]
                    run.cancel_one_of(peers, then_cancel)
            case Close(target, then_cancel):
                run.channels[target].close()
                if then_cancel is not None:
                    peers = run.receiving[target] + run.sending[target]
                    run.cancel_one_of(peers, then_cancel)
            case Cancel(position):
                run.cancel_one_of(run.tasks, position)
            case Step(count):
                for _ in range(count):
                    await asyncio.sleep(0)

    # Once the loop settled, every registration on a channel belongs to a task
    # that still waits: a select that completed or was cancelled left nothing.
    for _ in range(100):
        if not any(stale_registrations(channel) for channel in run.channels):
            break
        await asyncio.sleep(0)
    assert [stale_registrations(channel) for channel in run.channels] == [0] * len(run.channels)

    # The end: close everything, let every task finish, take what is left.
    for channel in run.channels:
        channel.close()
    async with asyncio.timeout(10):
        while not all(task.done() for task in run.tasks):
            await asyncio.sleep(0)
    for task in run.tasks:
        if not task.cancelled():
            assert task.exception() is None, repr(task.exception())
    for index, channel in enumerate(run.channels):
        while True:
            try:
                run.record_receive(index, channel.recv_nowait(), True)
            except ChannelClosed:
                run.record_receive(index, None, False)
                break
    return run


def stale_registrations(channel: Channel[Any]) -> int:
    """Registrations on ``channel`` whose select is over (they should be gone)."""
    stats = channel.statistics()
    registered = len(channel._recv_waiters) + len(channel._send_waiters)
    return registered - stats.waiting_receivers - stats.waiting_senders


# -- the properties ---------------------------------------------------------------------


def check(run: Run) -> None:
    received_items = [(index, item) for kind, index, item in run.received if kind == "item"]

    # Every item sent is received exactly once, from the channel it was sent on.
    assert len(set(run.sent)) == len(run.sent)
    assert len(set(received_items)) == len(received_items), "an item was received twice"
    assert set(received_items) == set(run.sent), "an item was lost or made up"

    # Items from one sender on one channel are received in the order they were sent.
    last_seen: dict[tuple[int, int], int] = {}
    for index, item in received_items:
        assert item is not None
        sender, number = item
        key = (index, sender)
        assert number > last_seen.get(key, -1), f"out of order on channel {index}: {item}"
        last_seen[key] = number

    # Once a receiver saw the end of a channel, nothing more comes out of it.
    ended: set[int] = set()
    for kind, index, item in run.received:
        if kind == "end":
            ended.add(index)
        else:
            assert index not in ended, f"{item} came out of channel {index} after its end"
    assert ended == set(range(len(run.channels)))

    # In the end no task waits and nothing is left in any channel.
    for channel in run.channels:
        stats = channel.statistics()
        assert (stats.waiting_receivers, stats.waiting_senders, stats.buffered) == (0, 0, 0)


def run_and_check(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    script: list[Operation],
    capacity_of: list[int],
) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        check(runner.run(execute(script, capacity_of)))


def loop_factories() -> list[Any]:
    factories: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return factories
    factories.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return factories


@pytest.mark.parametrize("loop_factory", loop_factories())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=scripts(3, SEVERAL_CHANNELS), capacity_of=capacities(3))
def test_channels_lose_nothing_and_keep_order_under_any_interleaving(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    script: list[Operation],
    capacity_of: list[int],
) -> None:
    run_and_check(loop_factory, script, capacity_of)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=scripts(1, CROWDED_CHANNEL), capacity_of=capacities(1))
def test_one_crowded_channel_loses_nothing_and_keeps_order_under_any_interleaving(
    script: list[Operation], capacity_of: list[int]
) -> None:
    run_and_check(asyncio.new_event_loop, script, capacity_of)


# -- the nowait operations against a model of Go's bounded queue -------------------------

nowait_scripts = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers()), st.just(("recv", 0)), st.just(("close", 0))
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(0, 4), script=nowait_scripts)
def test_nowait_operations_behave_like_a_bounded_fifo_queue(
    capacity: int, script: list[tuple[str, int]]
) -> None:
    channel: Channel[int] = Channel(capacity)
    model: deque[int] = deque()
    closed = False
    for action, value in script:
        if action == "send":
            if closed:
                with pytest.raises(ChannelClosed):
                    channel.send_nowait(value)
            elif len(model) < capacity:
                channel.send_nowait(value)
                model.append(value)
            else:
                with pytest.raises(WouldBlock):
                    channel.send_nowait(value)
        elif action == "recv":
            if model:
                assert channel.recv_nowait() == model.popleft()
            elif closed:
                with pytest.raises(ChannelClosed):
                    channel.recv_nowait()
            else:
                with pytest.raises(WouldBlock):
                    channel.recv_nowait()
        else:
            channel.close()
            closed = True
        assert len(channel) == len(model)
        assert channel.closed is closed
