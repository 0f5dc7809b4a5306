"""The connection engine: one WebSocket's behaviour, whatever server carries it.

The engine does no I/O. A server adapter feeds it what arrives
(:meth:`Connection.feed` for each message, :meth:`Connection.peer_closed`
for the client's close or a lost connection, the pong callback of
:meth:`Transport.ping`) and the engine tells the adapter what to do through
the :class:`Transport` it was given: write a frame, close with a code, abort,
pause or resume reading, ping. Everything a connection does is decided here,
once: flow control, size limits, decoding and reporting bad messages, write
deadlines, keepalive, the first close code winning, and a teardown that
loses nothing.

Flow control: a decoded message goes straight to a handler waiting in
``select``, or into the receiver's buffer. When the receiver is full the
engine holds what the adapter still delivers and asks it to pause reading,
so the client is held back through TCP; it resumes reading once the handler
has taken the held messages. While closing, reading never pauses, so the
client's close can be read.

Teardown: items queued on the sender are written before the close frame
(within ``write_wait``); ``done`` becomes ready only after the handler has
received every message the client sent before the end.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final, NamedTuple, Protocol

# The select protocol (Selectable, Operation, wait_for) is shared with channels.py: Done is a case.
from .channels import (
    Channel,
    ChannelClosed,
    Operation,
    Selectable,
    WouldBlock,
    wait_for,
)
from .close_codes import CloseCode
from .codecs import Codec, Frame
from .errors import (
    InvalidMessage,
    KeepaliveTimeout,
    MessageTooBig,
    RateLimited,
    ReceiverStalled,
    WriteFailed,
    WriteTimeout,
)
from .metrics import registry as metrics
from .options import LogLevel, Options

__all__ = [
    "Connection",
    "ConnectionStatistics",
    "Done",
    "State",
    "Transport",
]


class Transport(Protocol):
    """What the engine needs from a server adapter, for one accepted WebSocket.

    The whole contract of an adapter, in order: match the path to a
    handler's spec; ask :func:`wschannels.session.check_origin` and, when it
    returns a :class:`~wschannels.session.Refusal`, answer the upgrade with
    that HTTP status and body; otherwise accept the upgrade, make this
    transport, :func:`~wschannels.session.open_connection` with it (with
    ``keepalive=True`` where the server exposes ping and pong) and run
    :func:`~wschannels.session.serve`. Every method here returns at once.

    The adapter reports back to the engine:
    :meth:`Connection.feed` for each message, :meth:`Connection.peer_closed`
    when the client's close frame arrived (its code; 1005 without one) or the
    connection was lost (1006) — also after :meth:`close`, once the closing
    handshake is over. After :meth:`abort` the connection is already over.
    """

    def write(self, frame: Frame) -> Awaitable[None] | None:
        """Write a text (``str``) or binary (``bytes``) frame.

        None when the socket took it; otherwise an awaitable that completes
        when it is written (or raises why it could not be). The engine writes
        nothing more until then, and gives up after ``write_wait``.
        """

    def close(self, code: int) -> None:
        """Send a close frame with ``code`` and end the connection after the client's reply."""

    def abort(self) -> None:
        """Drop the connection now, without a closing handshake."""

    def pause_reading(self) -> None:
        """Stop reading from the client until :meth:`resume_reading` (TCP holds it back)."""

    def resume_reading(self) -> None:
        """Read again."""

    def ping(self, on_pong: Callable[[], None]) -> None:
        """Send a ping; call ``on_pong`` when a pong arrives.

        Only called when the connection was made with ``keepalive=True``:
        servers that hide ping and pong (ASGI) ping by themselves instead.
        """


class State(enum.Enum):
    """Where a connection is in its life."""

    OPEN = "open"
    """Messages flow both ways."""
    CLOSING = "closing"
    """A close code was chosen: what is queued is written, then the close frame."""
    CLOSED = "closed"
    """Nothing more is read or written (``done`` follows once the receiver is drained)."""


# Enum members are looked up through a descriptor on every ``State.X`` (about 0.17 µs
# each on CPython 3.11, timeit); the hot paths compare against these module constants.
_OPEN: Final = State.OPEN
_CLOSING: Final = State.CLOSING
_CLOSED: Final = State.CLOSED


class ConnectionStatistics(NamedTuple):
    """One connection's counters, from :meth:`Done.statistics`."""

    state: State
    close_code: int | None
    messages_in: int
    """Messages received from the client."""
    messages_out: int
    """Frames written to the client (the handler's and a Hub's)."""
    bytes_in: int
    """Payload received: bytes of binary messages, characters of text ones.

    (Counting the UTF-8 length of non-ASCII text would cost an encode per message.)
    """
    bytes_out: int
    """Payload written, counted the same way."""
    invalid_messages: int
    """Messages that could not be decoded."""
    too_big: int
    """Messages over ``max_message_size``."""
    messages_discarded: int
    """Received messages nobody read: no receiver, or unread at the end."""
    messages_undelivered: int
    """Frames for the client still queued when the connection ended."""
    errors_dropped: int
    """Errors dropped because the handler did not read ``errors`` in time."""


class Done(Selectable):
    """Ready once the connection is over and every message the client sent was received.

    Like a closed channel it stays ready: every receive gives ``True``.
    """

    __slots__ = ("_connection", "_ending", "_is_set", "_waiters")

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._is_set = False
        # The connection is over but the receiver still holds messages: done
        # becomes ready when a poll finds it drained.
        self._ending = False
        self._waiters: list[Operation] = []

    def __repr__(self) -> str:
        return f"<Done {'set' if self._is_set else 'pending'}>"

    def is_set(self) -> bool:
        """Whether the connection is over and every message was received."""
        return self._is_set

    async def recv(self) -> bool:
        """Wait until the connection is over and drained; returns True."""
        ready, _, _ = self._poll_recv()
        if not ready:
            await wait_for((self,), (False,), (None,), None)
        return True

    async def wait(self) -> bool:
        """The same as :meth:`recv`."""
        return await self.recv()

    def statistics(self) -> ConnectionStatistics:
        """The connection's counters at this instant."""
        return self._connection.statistics()

    def _set(self) -> None:
        if self._is_set:
            return
        self._is_set = True
        self._ending = False
        waiters, self._waiters = self._waiters, []
        for op in waiters:
            op.waiter.fire(op.index, True, True)

    def _poll_recv(self) -> tuple[bool, Any, bool]:
        if self._is_set:
            return True, True, True
        if self._ending and self._connection._drained():
            self._set()
            return True, True, True
        return False, None, False

    def _register_recv(self, op: Operation) -> None:
        self._waiters.append(op)

    def _unregister_recv(self, op: Operation) -> None:
        try:
            self._waiters.remove(op)
        except ValueError:
            pass

    def _put_back(self, value: Any) -> None:
        """Nothing to give back: ``done`` stays ready for every receiver."""


class _Log:
    """Log lines prefixed with the peer address, each gated by a precomputed flag."""

    __slots__ = ("debug_on", "error_on", "info_on", "logger", "prefix", "warning_on")

    def __init__(self, options: Options, peer: str) -> None:
        logger = options.logger
        level = -1 if options.skip_logging else options.log_level
        self.logger = logger
        self.prefix = f"[{peer}] "
        self.error_on = level >= LogLevel.ERROR and logger.isEnabledFor(logging.ERROR)
        self.warning_on = level >= LogLevel.WARNING and logger.isEnabledFor(logging.WARNING)
        self.info_on = level >= LogLevel.INFO and logger.isEnabledFor(logging.INFO)
        self.debug_on = level >= LogLevel.DEBUG and logger.isEnabledFor(logging.DEBUG)

    def error(self, message: str, *args: object, exc_info: BaseException | None = None) -> None:
        if self.error_on:
            self.logger.error(self.prefix + message, *args, exc_info=exc_info)

    def warning(self, message: str, *args: object) -> None:
        if self.warning_on:
            self.logger.warning(self.prefix + message, *args)

    def info(self, message: str, *args: object) -> None:
        if self.info_on:
            self.logger.info(self.prefix + message, *args)

    def debug(self, message: str, *args: object) -> None:
        if self.debug_on:
            self.logger.debug(self.prefix + message, *args)


def _write_error(error: BaseException) -> WriteFailed:
    if isinstance(error, OSError):
        return WriteFailed(f"write failed, the client is gone: {error!r}")
    return WriteFailed(f"write failed: {error!r}")


class _RateLimits:
    """Token buckets for messages and bytes: a second's worth of burst, refilled as time goes."""

    __slots__ = ("_byte_rate", "_bytes", "_last", "_loop", "_message_rate", "_messages")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, messages: float | None, nbytes: float | None
    ) -> None:
        self._loop = loop
        self._message_rate = messages
        self._byte_rate = nbytes
        self._messages = messages or 0.0
        self._bytes = nbytes or 0.0
        self._last = loop.time()

    def allow(self, size: int) -> bool:
        """Take one message of ``size`` from the buckets; False when one is empty."""
        now = self._loop.time()
        elapsed = now - self._last
        self._last = now
        allowed = True
        rate = self._message_rate
        if rate is not None:
            self._messages = min(rate, self._messages + elapsed * rate) - 1
            allowed = self._messages >= 0
        rate = self._byte_rate
        if rate is not None:
            self._bytes = min(rate, self._bytes + elapsed * rate) - size
            allowed = allowed and self._bytes >= 0
        return allowed


# How long the closing handshake may take when write_wait is None (never time out).
_CLOSE_TIMEOUT: Final = 10.0


class Connection:
    """One WebSocket's channels, its outgoing queue, its keepalive and its teardown.

    Frames delivered by a Hub share the outgoing queue with the handler's
    sends (one order), but are bounded separately, in bytes, by the Hub.
    """

    __slots__ = (
        "_bytes_in",
        "_bytes_out",
        "_close_callbacks",
        "_close_code",
        "_close_timer",
        "_closed",
        "_errors",
        "_errors_dropped",
        "_grace_timer",
        "_heard",
        "_invalid_messages",
        "_keepalive",
        "_keepalive_timer",
        "_last_heard",
        "_limits",
        "_loop",
        "_messages_discarded",
        "_messages_in",
        "_messages_out",
        "_messages_undelivered",
        "_overflow",
        "_paused",
        "_paused_at",
        "_peer_code",
        "_pending",
        "_queue",
        "_queued_from_sender",
        "_receiver",
        "_room_waiters",
        "_send_capacity",
        "_stall_timer",
        "_too_big",
        "_transport",
        "_violated",
        "_write_timer",
        "_written_some",
        "binding",
        "codec",
        "delivered_bytes_queued",
        "done",
        "log",
        "options",
        "peer",
        "state",
    )

    def __init__(
        self,
        codec: Codec,
        options: Options,
        transport: Transport,
        peer: str,
        *,
        wants_receiver: bool = True,
        keepalive: bool = False,
        binding: str = "raw",
    ) -> None:
        self.codec = codec
        self.binding = binding
        self.options = options
        self.peer = peer
        self.state = State.OPEN
        self.log = _Log(options, peer)
        self.done = Done(self)
        self.delivered_bytes_queued = 0
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._receiver: Channel[Any] | None = (
            Channel(options.recv_channel_buffer) if wants_receiver else None
        )
        self._errors: Channel[Exception] = Channel(options.errors_channel_buffer)
        # Reading: messages the adapter delivered while the receiver was full, in
        # order; the first of them waits on the receiver as a deferred send.
        # Made on first use, as the write queue: most connections never need them, and
        # an empty deque is 0.6 kB (bench idle scenario: 1.2 kB less per connection).
        self._overflow: deque[Any] | None = None
        self._paused = False
        self._paused_at = 0.0
        self._stall_timer: asyncio.TimerHandle | None = None
        self._peer_code: int | None = None  # the client ended while messages were held
        self._violated = False  # the client broke the protocol: nothing more is received
        # Writing: frames waiting for the socket, (frame, nbytes); nbytes < 0 marks
        # an item from the handler's sender, else a Hub delivery of that size.
        self._send_capacity = options.send_channel_buffer
        self._queue: deque[tuple[Frame, int]] | None = None  # made by the first write that waits
        self._queued_from_sender = 0
        self._pending: asyncio.Future[None] | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._room_waiters: list[Operation] = []
        self._written_some: asyncio.Future[None] | None = None
        # Closing.
        self._close_code: int | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._closed: asyncio.Future[None] | None = None
        self._grace_timer: asyncio.TimerHandle | None = None
        self._close_callbacks: list[Callable[[Connection], None]] = []
        # Counters.
        self._messages_in = 0
        self._messages_out = 0
        self._messages_discarded = 0
        self._messages_undelivered = 0
        self._errors_dropped = 0
        self._bytes_in = 0
        self._bytes_out = 0
        self._invalid_messages = 0
        self._too_big = 0
        # Keepalive (servers that expose ping and pong).
        self._keepalive = keepalive and options.ping_period is not None
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._heard = 0  # messages_in when last checked
        self._last_heard = self._loop.time()
        if self._keepalive:
            assert options.ping_period is not None
            self._keepalive_timer = self._loop.call_later(options.ping_period, self._keepalive_tick)
        self._limits = (
            None
            if options.max_messages_per_second is None and options.max_bytes_per_second is None
            else _RateLimits(
                self._loop, options.max_messages_per_second, options.max_bytes_per_second
            )
        )
        metrics.opened(self)

    def __repr__(self) -> str:
        return f"<Connection {self.peer} {self.state.value}>"

    # -- what the handler's views use ---------------------------------------------

    @property
    def receiver_channel(self) -> Channel[Any]:
        """The channel behind the handler's ``Receiver``."""
        if self._receiver is None:
            raise RuntimeError("this connection's handler takes no receiver")
        return self._receiver

    @property
    def errors_channel(self) -> Channel[Exception]:
        """The channel behind the handler's ``Errors``."""
        return self._errors

    @property
    def closed(self) -> bool:
        """True once the connection is closing or over: nothing more is written."""
        return self.state is not _OPEN

    @property
    def close_code(self) -> int | None:
        """The code the connection closed (or is closing) with."""
        return self._close_code

    def statistics(self) -> ConnectionStatistics:
        """The connection's counters at this instant."""
        return ConnectionStatistics(
            self.state,
            self._close_code,
            self._messages_in,
            self._messages_out,
            self._bytes_in,
            self._bytes_out,
            self._invalid_messages,
            self._too_big,
            self._messages_discarded,
            self._messages_undelivered,
            self._errors_dropped,
        )

    # -- reading: called by the adapter -------------------------------------------

    def feed(self, frame: Frame) -> bool:
        """Take one message from the client; False when the adapter should pause reading.

        The engine then has already called ``pause_reading``; messages the
        adapter still delivers are held, in order, and nothing is lost.
        """
        self._messages_in += 1
        receiver = self._receiver
        if receiver is None or self.state is _CLOSED or self._violated:
            self._messages_discarded += 1
            return True
        limit = self.options.max_message_size
        size = len(frame)
        self._bytes_in += size
        if self._limits is not None and not self._limits.allow(size):
            self._rate_limited()
            return True
        if size > limit or (
            type(frame) is str and size * 4 > limit and len(frame.encode()) > limit
        ):
            self.message_too_big(len(frame.encode()) if isinstance(frame, str) else size)
            return True
        try:
            item = self.codec.decode(frame)
        except InvalidMessage as error:
            self.invalid_message(error)
            return True
        overflow = self._overflow
        if overflow:  # held messages go first
            if self.state is _OPEN:
                overflow.append(item)
                return False
            self._messages_discarded += 1
            return True
        # The select protocol's hook, not send_nowait(): no WouldBlock raised and caught
        # each time the receiver is full, and one call less per message.
        if receiver._poll_send(item):
            return True
        if self.state is not _OPEN:  # closing: nobody will make room for it
            self._messages_discarded += 1
            return True
        if overflow is None:
            # The receiver takes held messages itself as the handler frees room: one poll
            # per message, where a deferred send (a future, its callback and a loop turn)
            # cost about 2,000 instructions more per message compiled, 6,000 pure, at 64 in
            # flight on picows (callgrind, `python -m bench.instructions`).
            overflow = self._overflow = deque()
            receiver._hold(overflow, self._overflow_emptied)
        overflow.append(item)
        self._pause()
        return False

    def _overflow_emptied(self) -> None:
        """The handler took the last held message (in its receive): resume after it."""
        self._loop.call_soon(self._overflow_drained)

    def _overflow_drained(self) -> None:
        if self._overflow:  # refilled again since (the client sent more before the pause)
            return
        self._resume()
        if self._peer_code is not None:  # the client ended after what was held
            code, self._peer_code = self._peer_code, None
            self.peer_closed(code)
        elif self.done._ending and self._drained():
            self._set_done()

    def _pause(self) -> None:
        if self._paused:
            return
        self._paused = True
        self._transport.pause_reading()
        wait = self.options.pong_wait
        if wait is not None:
            self._paused_at = self._loop.time()
            # One timer per pong_wait at most, not one per pause: it re-checks when it fires.
            if self._stall_timer is None:
                self._stall_timer = self._loop.call_later(wait, self._check_stalled)

    def _resume(self) -> None:
        if self._paused and self.state is not _CLOSED:
            self._paused = False
            self._transport.resume_reading()

    def _check_stalled(self) -> None:
        self._stall_timer = None
        wait = self.options.pong_wait
        if not self._paused or self.state is _CLOSED or wait is None:
            return
        remaining = self._paused_at + wait - self._loop.time()
        if remaining > 0:
            self._stall_timer = self._loop.call_later(remaining, self._check_stalled)
            return
        self.log.warning("the handler did not read its receiver for %s s: closing", wait)
        self.report(ReceiverStalled(f"the receiver stayed full for pong_wait ({wait} s)"))
        self.disconnect(CloseCode.TRY_AGAIN_LATER)

    def _rate_limited(self) -> None:
        """Over the limit: that message is not delivered, and the connection closes with 1008."""
        self._limits = None  # said once; the connection is closing
        options = self.options
        # A limit set as 20 reads "20", not "20.0" (compiled, a float field is always a float).
        limits = " or ".join(
            f"{int(limit) if float(limit).is_integer() else limit} {unit}/s"
            for limit, unit in (
                (options.max_messages_per_second, "messages"),
                (options.max_bytes_per_second, "bytes"),
            )
            if limit is not None
        )
        self.log.warning("over the rate limit (%s): closing", limits)
        self.report(RateLimited(f"the client sent faster than {limits}"))
        self.disconnect(CloseCode.POLICY_VIOLATION)

    def message_too_big(self, size: int | None) -> None:
        """The client sent a message over ``max_message_size``: report it, close with 1009.

        ``size`` is None when the server refused the message itself (its own
        limit, set from the route's) before it was read whole.
        """
        limit = self.options.max_message_size
        self._too_big += 1
        what = "a message" if size is None else f"message of {size} bytes"
        self.log.warning("%s is over max_message_size %d", what, limit)
        self.report(MessageTooBig(f"{what} is over max_message_size {limit}"))
        self.disconnect(CloseCode.MESSAGE_TOO_BIG)

    def invalid_message(self, error: InvalidMessage) -> None:
        """A message could not be decoded: report it, or close with 1007 if configured to."""
        self._invalid_messages += 1
        self.log.warning("%s", error)
        self.report(error)
        if self.options.close_on_invalid_message:
            self.disconnect(CloseCode.INVALID_FRAME_PAYLOAD_DATA)

    def protocol_error(self, code: int, why: str) -> None:
        """The client broke the protocol (the adapter checked it): close with ``code``.

        Nothing it sends from now on is received. What it sent before is still
        the handler's, and the close goes out one loop turn later, after the
        replies the handler makes to those messages at once: as strict as a
        server answering from its read loop (Autobahn's cases 3.2, 5.15).
        """
        if self.state is not _OPEN or self._violated:
            return
        self.log.warning("%s: closing with %d", why, code)
        self._violated = True
        self._close_code = code  # the first code wins, also over the client's reply
        self._loop.call_soon(self.disconnect, code)

    def peer_closed(self, code: int) -> None:
        """The client closed (its code), or the connection was lost (1006)."""
        if self.state is _CLOSED:
            return
        if self._overflow and self.state is _OPEN:
            # Messages before the close are still held: end once they are received.
            self._peer_code = code
            return
        self.log.info("closed by the client (code %d)", code)
        if self._close_code is None:
            self._close_code = code
        self._finish()

    # -- keepalive --------------------------------------------------------------------

    def _keepalive_tick(self) -> None:
        """Every ping_period: ping, or give the client up after pong_wait of silence."""
        self._keepalive_timer = None
        if self.state is _CLOSED:
            return
        now = self._loop.time()
        if self._messages_in != self._heard:
            self._heard = self._messages_in
            self._last_heard = now
        wait = self.options.pong_wait
        # While reading is paused the client cannot be heard: the stall rule applies instead.
        if wait is not None and not self._paused and now - self._last_heard >= wait:
            self.log.warning("nothing from the client for pong_wait (%s s): it is gone", wait)
            self.report(KeepaliveTimeout(f"no pong or message for pong_wait ({wait} s)"))
            self._give_up()
            return
        try:
            self._transport.ping(self._pong)
        except Exception as error:
            self._write_failed(_write_error(error))
            return
        assert self.options.ping_period is not None
        self._keepalive_timer = self._loop.call_later(
            self.options.ping_period, self._keepalive_tick
        )

    def _pong(self) -> None:
        self._last_heard = self._loop.time()

    # -- writing ----------------------------------------------------------------------

    def offer(self, frame: Frame) -> bool:
        """Take an encoded item from the handler's sender if there is room; never waits.

        Raises:
            ChannelClosed: the connection is closing or over.
        """
        if self.state is not _OPEN:
            raise ChannelClosed("the connection is closed: nothing more can be sent")
        if self._pending is None:  # the common case: _write() inlined, a call less per send
            try:
                pending = self._transport.write(frame)
            except Exception as error:
                self._write_failed(_write_error(error))
                return True
            self._messages_out += 1
            self._bytes_out += len(frame)
            if pending is not None:
                self._wait_for_write(pending)
            return True
        if self._queued_from_sender < self._send_capacity:
            queue = self._queue
            assert queue is not None  # made with _pending
            queue.append((frame, -1))
            self._queued_from_sender += 1
            return True
        return False

    def offer_in_select(self, frame: Frame) -> bool:
        """:meth:`offer` for a ``Send`` case: once the connection is over it is never ready.

        So ``select(Send(sender, item), done)`` picks ``done`` at the end instead
        of raising ``ChannelClosed`` when the send happens to be tried first.
        """
        if self.state is not _OPEN:
            return False
        return self.offer(frame)

    def wait_for_room(self, op: Operation) -> None:
        """Register a blocked send of the handler's; fired when its frame is queued.

        On a connection that is over, a lone send fails with ``ChannelClosed``;
        a send case of a ``select`` with other cases just never fires.
        """
        if self.state is not _OPEN:
            if op.waiter.cases == 1:
                op.waiter.fail(op.index, ChannelClosed("the connection is closed"))
            return
        self._room_waiters.append(op)

    def stop_waiting_for_room(self, op: Operation) -> None:
        """Withdraw a blocked send (its task was cancelled or another case fired)."""
        try:
            self._room_waiters.remove(op)
        except ValueError:
            pass

    def deliver(self, frame: Frame, nbytes: int) -> None:
        """Queue a frame encoded elsewhere (a Hub publish); never waits, never raises."""
        if self.state is not _OPEN:
            self._messages_undelivered += 1
            return
        if self._pending is None:
            self._write(frame)
        else:
            queue = self._queue
            assert queue is not None  # made with _pending
            queue.append((frame, nbytes))
            self.delivered_bytes_queued += nbytes

    def drop_oldest_delivered(self) -> int:
        """Drop the oldest delivered frame not yet written; returns its size (0 if none)."""
        queue = self._queue
        if queue is None:
            return 0
        for position, (_, nbytes) in enumerate(queue):
            if nbytes >= 0:
                del queue[position]
                self.delivered_bytes_queued -= nbytes
                return nbytes
        return 0

    async def wait_delivered_below(self, nbytes: int) -> None:
        """Wait until delivered frames not yet written take at most ``nbytes`` (or the end)."""
        while self.delivered_bytes_queued > nbytes and self.state is not _CLOSED:
            if self._written_some is None:
                self._written_some = self._loop.create_future()
            await asyncio.shield(self._written_some)

    def _write(self, frame: Frame) -> None:
        try:
            pending = self._transport.write(frame)
        except Exception as error:
            self._write_failed(_write_error(error))
            return
        self._messages_out += 1
        self._bytes_out += len(frame)
        if pending is not None:
            self._wait_for_write(pending)

    def _wait_for_write(self, pending: Awaitable[None]) -> None:
        """The socket is full: hold further frames until this write is done, for write_wait."""
        if self._queue is None:
            self._queue = deque()
        future: asyncio.Future[None] = asyncio.ensure_future(pending)
        self._pending = future
        future.add_done_callback(self._written)
        write_wait = self.options.write_wait
        if write_wait is not None:
            self._write_timer = self._loop.call_later(write_wait, self._write_timed_out)

    def _written(self, future: asyncio.Future[None]) -> None:
        if self._pending is not future:
            return
        self._pending = None
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self._write_failed(_write_error(error))
            return
        self._flush()

    def _flush(self) -> None:
        """Write queued frames until one has to wait; let waiting senders in; close when due."""
        queue = self._queue
        assert queue is not None  # a write waited: the queue was made then
        while self._pending is None and self.state is not _CLOSED:
            if queue:
                frame, nbytes = queue.popleft()
                if nbytes < 0:
                    self._queued_from_sender -= 1
                    self._admit_waiting_sender()
                else:
                    self.delivered_bytes_queued -= nbytes
                    written_some = self._written_some
                    if written_some is not None:  # wake publishers waiting for room
                        self._written_some = None
                        written_some.set_result(None)
                self._write(frame)
            elif not self._admit_waiting_sender():
                break
        if self._pending is None and self.state is _CLOSING and self._close_timer is None:
            self._send_close()

    def _admit_waiting_sender(self) -> bool:
        """Move one blocked sender's frame into the queue; False if none was waiting."""
        waiters = self._room_waiters
        while waiters:
            op = waiters.pop(0)
            if op.waiter.fire(op.index, None, True):
                queue = self._queue
                assert queue is not None  # made with _pending
                queue.append((op.value, -1))
                self._queued_from_sender += 1
                return True
        return False

    def _write_timed_out(self) -> None:
        self._write_timer = None
        wait = self.options.write_wait
        self._write_failed(WriteTimeout(f"a write took longer than write_wait ({wait} s)"))

    def _write_failed(self, error: WriteFailed | WriteTimeout) -> None:
        if self.state is _CLOSED:
            return
        if isinstance(error, WriteTimeout):
            self.log.warning("%s", error)
        else:
            self.log.info("%s", error)
        self.report(error)
        self._give_up()

    def abort(self) -> None:
        """End the connection now, without a closing handshake (1006): a shutdown's last resort."""
        if self.state is not _CLOSED:
            self.log.info("aborted")
            self._give_up()

    def _give_up(self) -> None:
        """End the connection at once, as if the network failed (1006)."""
        if self._close_code is None:
            self._close_code = CloseCode.ABNORMAL_CLOSURE
        try:
            self._transport.abort()
        except Exception as error:
            self.log.debug("abort failed: %r", error)
        self._finish()

    # -- errors, closing ----------------------------------------------------------------

    def report(self, error: Exception) -> None:
        """Put ``error`` on the handler's ``errors`` channel; never waits."""
        if self.done._is_set:
            return
        if self._errors.send_dropping_oldest(error):
            self._errors_dropped += 1
            self.log.debug("an unread error was dropped")

    def disconnect(self, code: int) -> None:
        """Close with ``code`` after writing what is queued; the first code wins."""
        if self.state is not _OPEN:
            return
        self.state = _CLOSING
        self._close_code = code
        self.log.info("closing (code %d)", code)
        # From now on reading never pauses, so that the client's close is seen; what
        # is already held still goes to the receiver as the handler makes room.
        if self._paused:
            self._paused = False
            self._transport.resume_reading()
        if self._peer_code is not None:  # the client had already ended
            code, self._peer_code = self._peer_code, None
            self.peer_closed(code)
        elif self._pending is None:
            self._send_close()

    def _send_close(self) -> None:
        code = self._close_code
        assert code is not None
        wait = self.options.write_wait
        self._close_timer = self._loop.call_later(
            _CLOSE_TIMEOUT if wait is None else wait, self._close_timed_out
        )
        try:
            self._transport.close(code)
        except Exception as error:
            self.log.debug("close frame not sent: %r", error)
            self._give_up()

    def _close_timed_out(self) -> None:
        self._close_timer = None
        if self.state is not _CLOSED:
            self.log.debug("the client did not complete the closing handshake")
            self._give_up()

    def add_close_callback(self, callback: Callable[[Connection], None]) -> None:
        """Call ``callback(connection)`` once, when the connection ends."""
        if self.state is _CLOSED:
            callback(self)
        else:
            self._close_callbacks.append(callback)

    async def wait_closed(self) -> None:
        """Wait until the connection is over (close sent and answered, or lost)."""
        if self.state is _CLOSED:
            return
        if self._closed is None:
            self._closed = self._loop.create_future()
        await asyncio.shield(self._closed)

    def _finish(self) -> None:
        """The connection is over: release everything, keep what the handler may still read."""
        if self.state is _CLOSED:
            return
        self.state = _CLOSED
        for timer in (
            self._stall_timer,
            self._write_timer,
            self._close_timer,
            self._keepalive_timer,
        ):
            if timer is not None:
                timer.cancel()
        self._stall_timer = self._write_timer = self._close_timer = self._keepalive_timer = None
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
        queue = self._queue
        undelivered = len(queue) if queue is not None else 0
        if undelivered:
            self._messages_undelivered += undelivered
            self.log.debug("%d queued messages not delivered", undelivered)
            assert queue is not None
            queue.clear()
        self.delivered_bytes_queued = 0
        self._queued_from_sender = 0
        waiters, self._room_waiters = self._room_waiters, []
        for op in waiters:  # a lone send fails; a select's send case never fires (see above)
            if op.waiter.cases == 1:
                op.waiter.fail(op.index, ChannelClosed("the connection is closed"))
        if self._written_some is not None and not self._written_some.done():
            self._written_some.set_result(None)
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                self.log.error("close callback %r failed", callback)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        metrics.ended_with(self)
        if self._drained():
            self._set_done()
        else:
            # A handler that never reads its receiver must still see done: give it
            # pong_wait to take what the client sent, then discard the rest.
            self.done._ending = True
            grace = self.options.pong_wait or 60.0
            self._grace_timer = self._loop.call_later(grace, self.discard_unread, True)

    def _drained(self) -> bool:
        """Whether the handler has received everything (nothing buffered, nothing held)."""
        receiver = self._receiver
        return receiver is None or (not receiver and not self._overflow)

    def discard_unread(self, grace_over: bool = False) -> None:
        """Drop what the handler did not receive (it returned, or ignored its receiver)."""
        if self.state is not _CLOSED or self.done._is_set:
            return
        receiver = self._receiver
        overflow = self._overflow
        unread = (len(overflow) if overflow else 0) + (len(receiver) if receiver is not None else 0)
        if overflow:
            overflow.clear()
        if receiver is not None:
            while True:
                try:
                    receiver.recv_nowait()
                except (WouldBlock, ChannelClosed):
                    break
        if unread:
            self._messages_discarded += unread
            if grace_over:
                self.log.warning("%d received messages were never read", unread)
            else:
                self.log.debug("%d received messages were never read", unread)
        self._set_done()

    def _set_done(self) -> None:
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        self.done._set()
