"""Go-style channels and ``select`` for asyncio.

A :class:`Channel` has Go's semantics: a capacity of 0 is a rendezvous (a send
completes only when a receiver takes the item), a positive capacity buffers that
many items, and closing lets receivers drain what is buffered before they see
the end. :func:`select` waits on several channel operations at once and
performs exactly one of them.

Every blocked operation is a *waiter* registered on the channels it waits on.
An operation completes by handing its item straight to a waiter (no task, no
queue in between), which is what keeps a message hop cheap.

Cancellation is exact: a task cancelled while it waits leaves no waiter behind,
and an item that was already handed to it is put back at the front of its
channel, so nothing is lost and the order holds. A send that already completed when the
cancellation arrives stays completed: ``select`` returns its result and the
cancellation is delivered when the task next waits, unless it was withdrawn by
then (as ``asyncio.timeout`` withdraws its own when its block ends).

The select protocol (:class:`Selectable`, :class:`Operation`, :class:`Waiter`
and :func:`wait_for`) is shared with :mod:`wschannels.views`, whose views are
select cases too; it is not part of the public API.
"""

from __future__ import annotations

import asyncio
import itertools
import operator
import random
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Final, Generic, NamedTuple, SupportsIndex, TypeVar

from .errors import ChannelClosed, WouldBlock

__all__ = [
    "Channel",
    "ChannelClosed",
    "ChannelStatistics",
    "DeferredSend",
    "SelectResult",
    "Send",
    "Ticker",
    "WouldBlock",
    "after",
    "select",
    "ticker",
    "try_select",
]

T = TypeVar("T")

_randrange: Final = random.randrange
_random: Final = random.random

# Every order in which ``select`` may try its cases, by number of cases. Trying
# them in one order drawn at random makes the choice among the ready cases
# uniform, as Go specifies, without allocating per select. (A rotation from a
# random start is not uniform: with cases a, b, c and only a, b ready, a would
# win two times in three.) Larger selects are rare and draw a fresh order.
_CACHED_ORDERS: Final = 5
_ORDERS: Final = [tuple(itertools.permutations(range(n))) for n in range(_CACHED_ORDERS + 1)]


class SelectResult(NamedTuple):
    """What :func:`select` did.

    ``channel`` is the very object passed as the chosen case (for a
    :class:`Send` case, the ``Send`` object). ``ok`` is False when the chosen
    case is a receive from a closed, drained channel (``value`` is then None).
    """

    channel: Any
    value: Any
    ok: bool


class _Fairness:
    """How many channel operations in a row completed without the event loop getting a turn.

    asyncio cannot preempt a task, and an operation that completes at once never
    suspends: a handler whose every send is taken by the socket, or whose receiver
    is always full, would never let the loop run, and other connections and the
    timers (write_wait, keepalive) would starve. So one operation in ``SHARE``
    first waits one loop turn, before it performs anything: a cancellation
    delivered there loses nothing. It costs an increment per operation and one
    loop turn (a few µs) per 64.
    """

    __slots__ = ("streak",)

    SHARE: Final = 64

    def __init__(self) -> None:
        self.streak = 0


# Shared with views.py, whose operations count too.
fairness: Final = _Fairness()


# SelectResult(a, b, c) runs the NamedTuple's Python-level __new__; building the tuple
# directly skips that frame on every select (about 0.15 µs, timeit on CPython 3.11).
_tuple_new: Final = tuple.__new__


def _result(channel: Any, value: Any, ok: bool) -> SelectResult:
    return _tuple_new(SelectResult, (channel, value, ok))


class ChannelStatistics(NamedTuple):
    """A snapshot of a channel, for introspection and tests."""

    capacity: int
    buffered: int
    waiting_receivers: int
    waiting_senders: int
    closed: bool


class Waiter:
    """One blocked ``select`` (or send/recv): fired at most once, by one case."""

    __slots__ = ("cases", "error", "future", "index", "ok", "resumed", "value")

    def __init__(self, future: asyncio.Future[None], cases: int = 1) -> None:
        self.future = future
        self.cases = cases  # a case that can never complete fails a lone wait, not a select
        self.index = -1
        self.value: Any = None
        self.ok = False
        self.error: BaseException | None = None
        self.resumed = False  # its task took the result: value and ok are final

    def fire(self, index: int, value: Any, ok: bool) -> bool:
        """Complete the waiter through case ``index``; False if it is already over."""
        future = self.future
        if future.done():
            return False
        self.index = index
        self.value = value
        self.ok = ok
        future.set_result(None)
        return True

    def fail(self, index: int, error: BaseException) -> bool:
        """Complete the waiter with an error raised in the waiting task."""
        future = self.future
        if future.done():
            return False
        self.index = index
        self.error = error
        future.set_result(None)
        return True


class Operation:
    """A waiter's registration on one channel: which case, and the item to send."""

    __slots__ = ("index", "value", "waiter")

    def __init__(self, waiter: Waiter, index: int, value: Any) -> None:
        self.waiter = waiter
        self.index = index
        self.value = value


class Selectable:
    """The operations ``select`` drives. Channels and the binding's views implement them.

    ``_poll_recv`` returns ``(ready, value, ok)``; ``_poll_send`` returns whether
    the item was taken. Both run without awaiting. A waiter that cannot
    complete now registers with ``_register_*`` and is fired later by the
    other side.
    """

    __slots__ = ()

    @property
    def _selectable(self) -> Selectable:
        """The object ``select`` drives for this case (views answer with their channel)."""
        return self

    def _poll_recv(self) -> tuple[bool, Any, bool]:
        raise TypeError(f"{type(self).__name__} is send-only: it cannot be received from")

    def _prepare_send(self, value: Any) -> Any:
        """Validate or encode an item once, before any attempt to send it."""
        raise TypeError(f"{type(self).__name__} is receive-only: it cannot be sent to")

    def _poll_send(self, value: Any) -> bool:
        raise TypeError(f"{type(self).__name__} is receive-only: it cannot be sent to")

    def _register_recv(self, op: Operation) -> None:
        raise NotImplementedError

    def _unregister_recv(self, op: Operation) -> None:
        raise NotImplementedError

    def _register_send(self, op: Operation) -> None:
        raise NotImplementedError

    def _unregister_send(self, op: Operation) -> None:
        raise NotImplementedError

    def _put_back(self, value: Any) -> None:
        """Return an item that a cancelled receiver had already been handed."""
        raise NotImplementedError


class Channel(Selectable, Generic[T]):
    """A channel of items of type ``T``, with Go's semantics.

    Args:
        capacity: how many items may wait in the channel. 0 (the default) makes
            every send wait for a receiver, as an unbuffered Go channel does.

    Example::

        ch: Channel[int] = Channel(capacity=10)
        await ch.send(1)
        assert await ch.recv() == 1
        ch.close()
        async for item in ch:  # ends once closed and drained
            ...
    """

    __slots__ = (
        "_buffer",
        "_capacity",
        "_closed",
        "_handed",
        "_held",
        "_on_held_drained",
        "_recv_waiters",
        "_send_waiters",
    )

    # Compiled, a parameter annotated ``int`` raises a bare TypeError for a float or a str;
    # a protocol is not checked at the call, so the check below can name the argument.
    def __init__(self, capacity: SupportsIndex = 0) -> None:
        try:
            size = operator.index(capacity)
        except TypeError:
            size = -1
        if size < 0:
            raise ValueError(f"capacity must be an int >= 0, got {capacity!r}")
        self._capacity = size
        self._buffer: deque[T] = deque()
        self._recv_waiters: list[Operation] = []
        self._send_waiters: list[Operation] = []
        # Receivers handed an item (or the end) whose tasks have not resumed yet,
        # in the order they were handed. Until its task resumes, what a receiver
        # was handed is not final: a cancelled receiver's item goes back ahead of
        # theirs, and a receive that completes at once takes the oldest of them.
        # Items are thus received in order even when a receive is cancelled.
        self._handed: list[Operation] = []
        self._closed = False
        # Items a producer that must never wait (a connection's reader) holds back while
        # the channel is full: each receive that frees a slot takes the oldest of them, in
        # order, with no future, callback or loop turn per item (see _hold()).
        self._held: deque[Any] | None = None
        self._on_held_drained: Callable[[], None] | None = None

    # -- public API -------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """How many items the channel buffers."""
        return self._capacity

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (buffered items may still be received)."""
        return self._closed

    def __len__(self) -> int:
        return len(self._buffer)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Channel {state} {len(self._buffer)}/{self._capacity}>"

    def statistics(self) -> ChannelStatistics:
        """Buffered items, waiting tasks and state, at this instant."""
        return ChannelStatistics(
            capacity=self._capacity,
            buffered=len(self._buffer),
            waiting_receivers=sum(not op.waiter.future.done() for op in self._recv_waiters),
            waiting_senders=sum(not op.waiter.future.done() for op in self._send_waiters),
            closed=self._closed,
        )

    async def send(self, item: T) -> None:
        """Send ``item``, waiting for room (or, unbuffered, for a receiver).

        Raises:
            ChannelClosed: the channel is closed, or was closed while waiting.
        """
        fairness.streak += 1
        if fairness.streak >= _Fairness.SHARE:
            await _give_the_loop_a_turn()
        if self._poll_send(item):
            return
        await wait_for((self,), (True,), (item,), None)

    def send_nowait(self, item: T) -> None:
        """Send ``item`` if that can be done at once.

        Raises:
            WouldBlock: no room and no waiting receiver.
            ChannelClosed: the channel is closed.
        """
        if not self._poll_send(item):
            raise WouldBlock

    async def recv(self) -> T:
        """Receive the next item, waiting for one.

        Raises:
            ChannelClosed: the channel is closed and drained.
        """
        fairness.streak += 1
        if fairness.streak >= _Fairness.SHARE:
            await _give_the_loop_a_turn()
        ready, value, ok = self._poll_recv()
        if not ready:
            _, value, ok = await wait_for((self,), (False,), (None,), None)
        if not ok:
            raise ChannelClosed("receive from a closed channel")
        return value  # type: ignore[no-any-return]

    def recv_nowait(self) -> T:
        """Receive an item if one is ready.

        Raises:
            WouldBlock: nothing to receive yet.
            ChannelClosed: the channel is closed and drained.
        """
        ready, value, ok = self._poll_recv()
        if not ready:
            raise WouldBlock
        if not ok:
            raise ChannelClosed("receive from a closed channel")
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the channel. Idempotent.

        Receivers drain what is buffered, then get :class:`ChannelClosed` (or
        ``ok=False`` from ``select``). Senders still waiting get
        :class:`ChannelClosed`, and their items are not delivered.
        """
        if self._closed:
            return
        self._closed = True
        recv_waiters, self._recv_waiters = self._recv_waiters, []
        handed = self._handed
        for op in recv_waiters:
            if op.waiter.fire(op.index, None, False):
                handed.append(op)
        send_waiters, self._send_waiters = self._send_waiters, []
        for op in send_waiters:
            op.waiter.fail(op.index, ChannelClosed("send on a closed channel"))

    def __aiter__(self) -> Channel[T]:
        return self

    async def __anext__(self) -> T:
        """``async for item in channel``: the next item; the loop ends once closed and drained."""
        fairness.streak += 1
        if fairness.streak >= _Fairness.SHARE:
            await _give_the_loop_a_turn()
        ready, value, ok = self._poll_recv()
        if not ready:
            _, value, ok = await wait_for((self,), (False,), (None,), None)
        if not ok:
            raise StopAsyncIteration
        return value  # type: ignore[no-any-return]

    # -- the select protocol ------------------------------------------------------

    def _poll_recv(self) -> tuple[bool, Any, bool]:
        buffer = self._buffer
        if buffer:
            value = buffer.popleft()
            ok = True
            # A blocked sender's item takes the freed slot. The check matters after
            # a put-back, which can leave the buffer over capacity: an unbuffered
            # sender must still wait for a receiver of its own.
            if len(buffer) < self._capacity:
                send_waiters = self._send_waiters
                while send_waiters:
                    op = send_waiters.pop(0)
                    if op.waiter.fire(op.index, None, True):
                        buffer.append(op.value)
                        break
                else:
                    held = self._held
                    if held:
                        buffer.append(held.popleft())
                        if not held:
                            self._held_drained()
        else:
            send_waiters = self._send_waiters
            while send_waiters:  # unbuffered: take the item straight from a blocked sender
                op = send_waiters.pop(0)
                if op.waiter.fire(op.index, None, True):
                    value = op.value
                    ok = True
                    break
            else:
                held = self._held
                if held:  # or from the producer's held items
                    value = held.popleft()
                    ok = True
                    if not held:
                        self._held_drained()
                elif not self._closed:
                    return False, None, False
                else:
                    value = None
                    ok = False
        handed = self._handed
        while handed and handed[0].waiter.resumed:
            handed.pop(0)
        if handed:
            # Receivers handed earlier items have not resumed: this receive completes
            # first, so it takes the oldest item, and each of them the next one.
            for op in reversed(handed):
                waiter = op.waiter
                if not waiter.resumed:
                    waiter.value, value = value, waiter.value
                    waiter.ok, ok = ok, waiter.ok
        return True, value, ok

    def _hold(self, held: deque[Any], on_drained: Callable[[], None]) -> None:
        """Take items from ``held`` whenever there is room, after the buffer's, in order.

        For a producer that must never wait (a connection's reader): it appends
        to ``held`` once a send does not fit, and each receive that frees a slot
        moves the oldest held item in. ``on_drained`` is called, in that receive,
        when it took the last one. A receiver waiting on an empty unbuffered
        channel is not handed held items: the producer sends while none are held.
        """
        self._held = held
        self._on_held_drained = on_drained

    def _held_drained(self) -> None:
        on_drained = self._on_held_drained
        if on_drained is not None:
            on_drained()

    def _prepare_send(self, value: Any) -> Any:
        return value

    def _poll_send(self, value: Any) -> bool:
        if self._closed:
            raise ChannelClosed("send on a closed channel")
        recv_waiters = self._recv_waiters
        while recv_waiters:  # a waiting receiver implies an empty buffer
            op = recv_waiters.pop(0)
            if op.waiter.fire(op.index, value, True):
                handed = self._handed
                while handed and handed[0].waiter.resumed:
                    handed.pop(0)
                handed.append(op)
                return True
        if len(self._buffer) < self._capacity:
            self._buffer.append(value)
            return True
        return False

    def send_dropping_oldest(self, item: T) -> bool:
        """Send without ever waiting; when full, drop the oldest item. True if one was dropped.

        For a lossy stream whose newest items matter most (the handler's
        ``errors``). Unbuffered with no receiver waiting, ``item`` itself is dropped.

        Raises:
            ChannelClosed: the channel is closed.
        """
        if self._poll_send(item):
            return False
        if not self._buffer:
            return True
        self._buffer.popleft()
        self._buffer.append(item)
        return True

    def send_deferred(self, item: T, when_taken: Callable[[bool], None]) -> DeferredSend:
        """Send ``item`` without waiting, as a callback-driven producer must.

        The item is taken at once if there is room (the result's ``taken`` is
        then True and ``when_taken`` is not called); otherwise it waits in line
        with blocked senders and is taken in its turn: ``when_taken(True)`` is
        called soon after, or ``when_taken(False)`` if the channel was closed
        first or the send was cancelled (the item is then not delivered). A
        producer that must never block (a connection's reader) uses this to
        hold back its source while the channel is full.

        Raises:
            ChannelClosed: the channel is closed.
        """
        return DeferredSend(self, item, when_taken)

    def _register_recv(self, op: Operation) -> None:
        self._recv_waiters.append(op)

    def _unregister_recv(self, op: Operation) -> None:
        try:
            self._recv_waiters.remove(op)
        except ValueError:
            pass

    def _register_send(self, op: Operation) -> None:
        self._send_waiters.append(op)

    def _unregister_send(self, op: Operation) -> None:
        try:
            self._send_waiters.remove(op)
        except ValueError:
            pass

    def _put_back(self, value: Any) -> None:
        # Receivers handed later items (or the end) that have not resumed yet each
        # take the one before theirs: the order is as if the cancelled receive had
        # never happened.
        ok = True
        for op in self._handed:
            waiter = op.waiter
            if not waiter.resumed:
                waiter.value, value = value, waiter.value
                waiter.ok, ok = ok, waiter.ok
        if not ok:  # what is left over is the end, which the closed channel keeps giving
            return
        recv_waiters = self._recv_waiters
        while recv_waiters:
            op = recv_waiters.pop(0)
            if op.waiter.fire(op.index, value, True):
                self._handed.append(op)
                return
        self._buffer.appendleft(value)


class DeferredSend:
    """A send started by :meth:`Channel.send_deferred`; ``taken`` once the channel took it."""

    __slots__ = ("_channel", "_op", "_when_taken", "taken")

    def __init__(
        self, channel: Channel[Any], item: Any, when_taken: Callable[[bool], None]
    ) -> None:
        self._channel = channel
        self._when_taken = when_taken
        self._op: Operation | None = None
        self.taken = channel._poll_send(item)
        if self.taken:
            return
        waiter = Waiter(asyncio.get_running_loop().create_future())
        waiter.future.add_done_callback(self._settled)
        self._op = Operation(waiter, 0, item)
        channel._register_send(self._op)

    def _settled(self, _: asyncio.Future[None]) -> None:
        op = self._op
        assert op is not None
        self._op = None
        self.taken = op.waiter.error is None and not op.waiter.future.cancelled()
        self._when_taken(self.taken)

    def cancel(self) -> None:
        """Withdraw the item if it was not taken yet (``when_taken(False)`` follows)."""
        op = self._op
        if op is not None:
            self._channel._unregister_send(op)
            op.waiter.future.cancel()


class Send:
    """A send case for :func:`select`: ``Send(channel, value)``."""

    __slots__ = ("channel", "value")

    def __init__(self, channel: Any, value: Any) -> None:
        self.channel = channel
        self.value = value

    def __repr__(self) -> str:
        return f"Send({self.channel!r}, {self.value!r})"


def _target(case: Any) -> Selectable:
    """The object whose operations a case drives (a view answers with its channel)."""
    target = getattr(case, "_selectable", None)
    if isinstance(target, Selectable):
        return target
    raise TypeError(
        f"select() takes channels, receive-side views and Send(...) cases, got {case!r}"
    )


def _resolve(
    cases: tuple[Any, ...],
) -> tuple[tuple[Selectable, ...], tuple[bool, ...], tuple[Any, ...]]:
    if not cases:
        raise ValueError("select() needs at least one case")
    targets: list[Selectable] = []
    sending: list[bool] = []
    values: list[Any] = []
    for case in cases:
        if type(case) is Send:
            target = _target(case.channel)
            targets.append(target)
            sending.append(True)
            values.append(target._prepare_send(case.value))
        else:
            targets.append(_target(case))
            sending.append(False)
            values.append(None)
    return tuple(targets), tuple(sending), tuple(values)


def _poll(
    targets: tuple[Selectable, ...],
    sending: tuple[bool, ...],
    values: tuple[Any, ...],
    biased: bool,
) -> tuple[int, Any, bool]:
    """Try every case once, in a random order unless ``biased``; index -1 if none is ready."""
    count = len(targets)
    order: Sequence[int]
    if count <= _CACHED_ORDERS:
        orders = _ORDERS[count]
        order = orders[0] if biased or count == 1 else orders[_randrange(len(orders))]
    else:
        order = range(count) if biased else random.sample(range(count), count)
    for index in order:
        if sending[index]:
            if targets[index]._poll_send(values[index]):
                return index, None, True
        else:
            ready, value, ok = targets[index]._poll_recv()
            if ready:
                return index, value, ok
    return -1, None, False


async def wait_for(
    targets: tuple[Selectable, ...],
    sending: tuple[bool, ...],
    values: tuple[Any, ...],
    cases: tuple[Any, ...] | None,
) -> SelectResult:
    """Register one waiter on every case and wait until one case fires it."""
    waiter = Waiter(asyncio.get_running_loop().create_future(), len(targets))
    ops = []
    for index in range(len(targets)):
        op = Operation(waiter, index, values[index])
        ops.append(op)
        if sending[index]:
            targets[index]._register_send(op)
        else:
            targets[index]._register_recv(op)
    try:
        fairness.streak = 0  # this task waits: the loop gets its turn
        await waiter.future
    except asyncio.CancelledError:
        waiter.resumed = True
        _unregister(ops, targets, sending)
        if not _settle_cancelled(waiter, targets, sending):
            raise
        # The send was delivered and cannot be taken back: report it as done and
        # deliver the cancellation when the task next waits. Re-arming it right
        # here would outlive a canceller that withdraws it before then: on Python
        # < 3.13, an asyncio.timeout whose block ends with this send would leave
        # the task to be cancelled after the block.
        task = asyncio.current_task()
        assert task is not None
        task.get_loop().call_soon(_cancel_if_still_requested, task)
        index = waiter.index
        return _result(targets[index] if cases is None else cases[index], None, True)
    waiter.resumed = True
    index = waiter.index
    if len(ops) > 1:
        _unregister(ops, targets, sending, skip=index)
    if waiter.error is not None:
        raise waiter.error
    chosen = targets[index] if cases is None else cases[index]
    value = waiter.value
    waiter.value = None  # a channel may list the waiter a while longer: keep no item alive
    return _result(chosen, value, waiter.ok)


def _cancel_if_still_requested(task: asyncio.Task[Any]) -> None:
    """Deliver a cancellation that a completed send held back, unless it was withdrawn."""
    if task.cancelling() and not task.done():
        task.uncancel()  # keep the count: this is the same request, delivered late
        task.cancel()


def _unregister(
    ops: list[Operation], targets: tuple[Selectable, ...], sending: tuple[bool, ...], skip: int = -1
) -> None:
    """Remove a waiter's registrations; ``skip`` is the case that fired (already removed)."""
    for op in ops:
        index = op.index
        if index == skip:
            continue
        if sending[index]:
            targets[index]._unregister_send(op)
        else:
            targets[index]._unregister_recv(op)


def _settle_cancelled(
    waiter: Waiter, targets: tuple[Selectable, ...], sending: tuple[bool, ...]
) -> bool:
    """A waiter was fired, then its task cancelled before it resumed: lose nothing.

    Returns True when the fired case was a delivered send, which stands.
    """
    if waiter.future.cancelled() or waiter.index < 0 or waiter.error is not None:
        return False
    index = waiter.index
    if sending[index]:
        return True
    if waiter.ok:  # hand the item back so the next receiver gets it, in order
        value = waiter.value
        waiter.value = None
        targets[index]._put_back(value)
    return False


async def select(*cases: Any, biased: bool = False) -> SelectResult:
    """Wait until one case can proceed, perform it, and say which.

    A case is a channel or a receive-side view (receive from it), or
    ``Send(channel, value)`` (send ``value`` on it). When several are ready one
    is chosen at random, as Go does, so no case starves; with ``biased=True``
    the first ready case in argument order wins.

    Returns:
        ``SelectResult(channel, value, ok)``, where ``channel`` is the very
        object passed as the case. ``ok`` is False for a receive from a
        closed, drained channel.

    Raises:
        ChannelClosed: the chosen case is a send on a closed channel.
        TypeError: a case is not a channel, or goes against a view's direction.

    Example::

        chosen, value, ok = await select(receiver, done, tick)
        if chosen is receiver:
            ...
    """
    fairness.streak += 1
    if fairness.streak >= _Fairness.SHARE:
        await _give_the_loop_a_turn()
    count = len(cases)
    if count == 2 and not biased:  # the common `select(receiver, done)`: poll with no set-up
        first = cases[0]
        second = cases[1]
        # Channels and Done are their own targets; views carry theirs in a slot.
        a = first if isinstance(first, Selectable) else getattr(first, "_selectable", None)
        b = second if isinstance(second, Selectable) else getattr(second, "_selectable", None)
        pair = (a, b) if isinstance(a, Selectable) and isinstance(b, Selectable) else None
        if pair is not None:
            if _random() < 0.5:
                first, second = second, first
                pair = (pair[1], pair[0])
            ready, value, ok = pair[0]._poll_recv()
            if ready:
                return _tuple_new(SelectResult, (first, value, ok))
            ready, value, ok = pair[1]._poll_recv()
            if ready:
                return _tuple_new(SelectResult, (second, value, ok))
            return await wait_for(pair, (False, False), (None, None), (first, second))
    targets, sending, values = _resolve(cases)
    index, value, ok = _poll(targets, sending, values, biased)
    if index >= 0:
        return _result(cases[index], value, ok)
    return await wait_for(targets, sending, values, cases)


async def _give_the_loop_a_turn() -> None:
    fairness.streak = 0
    await asyncio.sleep(0)


def try_select(*cases: Any, biased: bool = False) -> SelectResult | None:
    """Like :func:`select`, but never waits: None when no case is ready (Go's ``default:``)."""
    targets, sending, values = _resolve(cases)
    index, value, ok = _poll(targets, sending, values, biased)
    if index < 0:
        return None
    return _result(cases[index], value, ok)


def after(seconds: float) -> Channel[float]:
    """A channel that receives the loop's time once, ``seconds`` from now (Go's ``time.After``)."""
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds!r}")
    loop = asyncio.get_running_loop()
    channel: Channel[float] = Channel(1)
    loop.call_later(seconds, lambda: channel.closed or channel._poll_send(loop.time()))
    return channel


class Ticker(Channel[float]):
    """A channel that receives the event loop's time every ``period`` seconds.

    Like Go's ``time.Ticker`` it holds at most one tick: while a tick is
    pending, later ones are dropped, so a receiver that falls behind gets one
    tick, not a backlog. Stop it with :meth:`stop`, :meth:`close` or by using
    it as a context manager.
    """

    __slots__ = ("_handle", "_loop", "_next", "_period")

    def __init__(self, period: float) -> None:
        if not period > 0:
            raise ValueError(f"period must be > 0 seconds, got {period!r}")
        super().__init__(1)
        self._period = period
        self._loop = asyncio.get_running_loop()
        self._next = self._loop.time() + period
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(self._next, self._tick)

    @property
    def period(self) -> float:
        """Seconds between ticks."""
        return self._period

    def _tick(self) -> None:
        now = self._loop.time()
        if not self._buffer:
            self._poll_send(now)
        # Stay on the original grid; skip ticks that were missed entirely.
        self._next += self._period * max(1, int((now - self._next) // self._period) + 1)
        self._handle = self._loop.call_at(self._next, self._tick)

    def stop(self) -> None:
        """Stop ticking. A tick already pending may still be received."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def close(self) -> None:
        """Stop ticking and close the channel: a pending tick is received, then the end."""
        self.stop()
        super().close()

    def __enter__(self) -> Ticker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def ticker(seconds: float) -> Ticker:
    """A :class:`Ticker` firing every ``seconds`` (Go's ``time.NewTicker``)."""
    return Ticker(seconds)
