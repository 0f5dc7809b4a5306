"""The connection engine: one WebSocket bound to channels, whatever server runs it.

A transport (ASGI, or a server that exposes frames) feeds received frames in
with :meth:`Connection.feed` and reports the peer's close with
:meth:`Connection.peer_closed`; the engine writes through
:meth:`Transport.write`, which completes at once when the socket can take the
frame and returns a future only when it cannot. So a message crosses the
engine without a task, a queue or a future of its own: a received item goes
straight to the handler's waiting ``select``, and a sent item straight to the
socket.

Teardown is ordered so that nothing is lost: items queued on the sender are
written before the close frame (within ``write_wait``); ``done`` becomes
ready only after the handler has received every message the client sent
before closing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .channels import Channel, ChannelClosed, _Op
from .close_codes import CloseCode
from .codecs import Codec, Frame, InvalidMessage
from .options import LogLevel, Options
from .views import Done

__all__ = [
    "Connection",
    "ConnectionStats",
    "MessageTooBig",
    "ReceiverStalled",
    "Transport",
    "WriteFailed",
    "WriteTimeout",
]


class MessageTooBig(Exception):
    """The client sent a message over ``max_message_size``; the connection closes with 1009."""


class WriteTimeout(Exception):
    """A write took longer than ``write_wait``; the connection is given up (1006)."""


class WriteFailed(Exception):
    """A write failed; the connection is given up (1006)."""


class ReceiverStalled(Exception):
    """The handler left its receiver full for ``pong_wait`` seconds; the connection closes (1013).

    While the receiver is full the client is held back, and its close or
    pings cannot be read either; closing keeps a stuck handler from pinning
    the connection for good (the seed's fault).
    """


class Transport(Protocol):
    """What the engine needs from a server: write frames, close."""

    def write(self, frame: Frame) -> asyncio.Future[None] | None:
        """Write a frame; None when done at once, else a future for the write."""

    def close(self, code: int) -> asyncio.Future[None] | None:
        """Send a close frame with ``code``; None when done at once."""


class ConnectionStats:
    """Counters of one connection."""

    __slots__ = (
        "errors_dropped",
        "messages_discarded",
        "messages_in",
        "messages_out",
        "messages_undelivered",
    )

    def __init__(self) -> None:
        self.messages_in = 0
        self.messages_out = 0
        self.messages_discarded = 0  # received with no receiver to read them
        self.messages_undelivered = 0  # queued for the client when it went away
        self.errors_dropped = 0  # errors the handler did not read in time


def _nothing() -> None:
    pass


def _write_error(error: Exception) -> WriteFailed:
    if isinstance(error, OSError):  # the client is gone; the reader will say so too
        return WriteFailed(f"write failed, the client is gone: {error!r}")
    return WriteFailed(f"write failed: {error!r}")


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

    def error(self, message: str, *args: object, exc_info: bool = False) -> None:
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


class _ReceiverChannel(Channel[Any]):
    """The receiver's (or errors') channel. Once closed and drained it is never ready in ``select``.

    Go's receiver is never closed, so ``select(receiver, done)`` sees only
    ``done`` at the end; closing ours must not make it compete with ``done``.
    Direct receives (``recv()``, ``async for``) end with ``ChannelClosed``
    instead, through :class:`~wschannels.Receiver`.
    """

    __slots__ = ("_on_drained", "_puller")

    def __init__(self, capacity: int, on_drained: Callable[[], None]) -> None:
        super().__init__(capacity)
        self._on_drained = on_drained
        self._puller: Any = None

    def _poll_recv(self) -> tuple[bool, Any, bool]:
        buffer = self._buffer
        if buffer:
            value = buffer.popleft()
            send_waiters = self._send_waiters
            while send_waiters:  # the transport's blocked delivery takes the freed slot
                op = send_waiters.pop(0)
                if op.waiter.fire(op.index, None, True):
                    buffer.append(op.value)
                    break
            puller = self._puller
            if puller is not None and puller._parked:
                puller.schedule_unpark()
            if self._closed and not buffer:
                self._on_drained()
            return True, value, True
        if self._closed:
            return False, None, False
        return super()._poll_recv()

    def _register_recv(self, op: _Op) -> None:
        super()._register_recv(op)
        # A waiting receiver is room too (all the room an unbuffered receiver has).
        puller = self._puller
        if puller is not None and puller._parked:
            puller.schedule_unpark()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Waiting receivers keep waiting: done fires them. The transport's
        # blocked delivery (if any) ends.
        send_waiters, self._send_waiters = self._send_waiters, []
        for op in send_waiters:
            op.waiter.fail(op.index, ChannelClosed("the connection is over"))


class Connection:
    """One WebSocket's channels, its outgoing queue and its teardown.

    Frames delivered by a Hub share the outgoing queue with the handler's
    sends (one order), but are bounded separately, in bytes, by the Hub.
    """

    __slots__ = (
        "_close_callbacks",
        "_close_code",
        "_closer",
        "_drain_timer",
        "_drained",
        "_ended",
        "_errors",
        "_log",
        "_loop",
        "_over",
        "_parked_at",
        "_pending",
        "_queue",
        "_queued_from_sender",
        "_receiver",
        "_room_waiters",
        "_send_capacity",
        "_stall_timer",
        "_transport",
        "_write_timer",
        "_written_some",
        "codec",
        "delivered_bytes_queued",
        "done",
        "options",
        "peer",
        "stats",
    )

    def __init__(
        self,
        codec: Codec,
        options: Options,
        transport: Transport,
        peer: str,
        *,
        wants_receiver: bool,
    ) -> None:
        self.codec = codec
        self.options = options
        self.peer = peer
        self.stats = ConnectionStats()
        self.done = Done()
        self.delivered_bytes_queued = 0
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._log = _Log(options, peer)
        self._receiver: _ReceiverChannel | None = (
            _ReceiverChannel(options.recv_channel_buffer, self._receiver_drained)
            if wants_receiver
            else None
        )
        self._errors: Channel[Exception] = _ReceiverChannel(
            options.errors_channel_buffer, _nothing
        )
        self._send_capacity = options.send_channel_buffer
        # Outgoing frames waiting for the socket: (frame, nbytes); nbytes < 0 marks a sender item.
        self._queue: deque[tuple[Frame, int]] = deque()
        self._queued_from_sender = 0
        self._pending: asyncio.Future[None] | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._room_waiters: list[_Op] = []
        self._drained: asyncio.Future[None] | None = None
        self._written_some: asyncio.Future[None] | None = None
        self._close_code: int | None = None
        self._closer: asyncio.Task[None] | None = None
        self._over = False
        self._ended: asyncio.Future[None] = self._loop.create_future()
        self._drain_timer: asyncio.TimerHandle | None = None
        self._stall_timer: asyncio.TimerHandle | None = None
        self._parked_at: float | None = None  # since when reading waits for receiver room
        self._close_callbacks: list[Callable[[Connection], None]] = []

    def __repr__(self) -> str:
        return f"<Connection {self.peer} {'over' if self._over else 'open'}>"

    # -- the handler's channels ---------------------------------------------------

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

    def attach_puller(self, puller: Any) -> None:
        """Let a task waiting on the receiver or ``done`` read from ``puller`` itself."""
        if self._receiver is not None:
            self._receiver._puller = puller
        self.done._puller = puller

    def wants_frames(self) -> bool:
        """Whether a transport should read the next frame now.

        Not while the receiver is full (that holds the client back through TCP);
        always while closing, so that the client's close can be read.
        """
        receiver = self._receiver
        if receiver is not None and len(receiver._buffer) < receiver._capacity and not self._over:
            self._parked_at = None
            return True  # the common case, first
        if self._over:
            return False
        ready = (
            receiver is None
            or receiver._closed
            or self._close_code is not None
            or len(receiver._buffer) < receiver._capacity
            or bool(receiver._recv_waiters)
        )
        if ready:
            self._parked_at = None
        else:
            # One timer per pong_wait at most, not one per fill: it re-checks when it fires.
            if self._parked_at is None:
                self._parked_at = self._loop.time()
            wait = self.options.pong_wait
            if self._stall_timer is None and wait is not None:
                self._stall_timer = self._loop.call_later(wait, self._check_stalled)
        return ready

    def _check_stalled(self) -> None:
        self._stall_timer = None
        parked_at = self._parked_at
        wait = self.options.pong_wait
        if parked_at is None or self._over or wait is None:
            return
        remaining = parked_at + wait - self._loop.time()
        if remaining > 0:
            self._stall_timer = self._loop.call_later(remaining, self._check_stalled)
            return
        receiver = self._receiver
        if receiver is None:
            return
        self._log.warning("the handler did not read its receiver for %s s: closing", wait)
        self.report(ReceiverStalled(f"the receiver stayed full for pong_wait ({wait} s)"))
        self.disconnect(CloseCode.TRY_AGAIN_LATER)
        puller = receiver._puller
        if puller is not None:
            puller.schedule_unpark()  # read on, discarding, until the client's close

    @property
    def closed(self) -> bool:
        """True once the connection is closing or over: nothing more is written."""
        return self._over or self._close_code is not None

    @property
    def close_code(self) -> int | None:
        """The code the connection closed (or is closing) with."""
        return self._close_code

    # -- reading (called by the transport) ----------------------------------------

    def feed(self, frame: Frame) -> Awaitable[None] | None:
        """Take one received frame; returns an awaitable when the receiver is full.

        The transport stops reading until that awaitable is done, which holds
        the client back through TCP instead of buffering without bound.
        """
        stats = self.stats
        stats.messages_in += 1
        receiver = self._receiver
        if receiver is None or receiver._closed:
            stats.messages_discarded += 1
            return None
        limit = self.options.max_message_size
        size = len(frame)
        if size > limit or (
            type(frame) is str and size * 4 > limit and len(frame.encode()) > limit
        ):
            self._message_too_big(frame)
            return None
        try:
            item = self.codec.decode(frame)
        except InvalidMessage as error:
            self._invalid_message(error)
            return None
        if receiver._poll_send(item):
            return None
        if self._close_code is not None:  # closing: nobody will make room for it
            stats.messages_discarded += 1
            return None
        return self._feed_when_room(receiver, item)

    async def _feed_when_room(self, receiver: Channel[Any], item: Any) -> None:
        try:
            await receiver.send(item)
        except ChannelClosed:
            self.stats.messages_discarded += 1

    def _message_too_big(self, frame: Frame) -> None:
        size = len(frame) if isinstance(frame, bytes) else len(frame.encode())
        limit = self.options.max_message_size
        self._log.warning("message of %d bytes is over max_message_size %d", size, limit)
        self.report(MessageTooBig(f"message of {size} bytes is over max_message_size {limit}"))
        self.disconnect(CloseCode.MESSAGE_TOO_BIG)

    def _invalid_message(self, error: InvalidMessage) -> None:
        self._log.warning("%s", error)
        self.report(error)
        if self.options.close_on_invalid_message:
            self.disconnect(CloseCode.INVALID_FRAME_PAYLOAD_DATA)

    def peer_closed(self, code: int) -> None:
        """The client closed, or the network went away (1006)."""
        if self._over:
            return
        self._log.info("closed by the client (code %d)", code)
        if self._close_code is None:
            self._close_code = code
        if self._closer is not None:
            self._closer.cancel()
        self._finish()

    # -- writing --------------------------------------------------------------------

    def _offer(self, frame: Frame) -> bool:
        """Take a frame from the handler's sender if there is room; never waits."""
        if self._over or self._close_code is not None:
            raise ChannelClosed("the connection is closed: nothing more can be sent")
        if self._pending is None and not self._queue:
            try:
                pending = self._transport.write(frame)
            except Exception as error:
                self._write_failed(_write_error(error))
                return True
            self.stats.messages_out += 1
            if pending is not None:
                self._wait_for_write(pending)
            return True
        if self._queued_from_sender < self._send_capacity:
            self._queue.append((frame, -1))
            self._queued_from_sender += 1
            return True
        return False

    def deliver(self, frame: Frame, nbytes: int) -> None:
        """Queue a frame encoded elsewhere (a Hub publish); never waits, never raises."""
        if self._over or self._close_code is not None:
            self.stats.messages_undelivered += 1
            return
        if self._pending is None and not self._queue:
            self._write(frame)
        else:
            self._queue.append((frame, nbytes))
            self.delivered_bytes_queued += nbytes

    def drop_oldest_delivered(self) -> int:
        """Drop the oldest delivered frame not yet written; returns its size (0 if none)."""
        queue = self._queue
        for position, (_, nbytes) in enumerate(queue):
            if nbytes >= 0:
                del queue[position]
                self.delivered_bytes_queued -= nbytes
                return nbytes
        return 0

    async def wait_delivered_below(self, nbytes: int) -> None:
        """Wait until delivered frames not yet written take at most ``nbytes`` (or the end)."""
        while self.delivered_bytes_queued > nbytes and not self._over:
            if self._written_some is None:
                self._written_some = self._loop.create_future()
            await asyncio.shield(self._written_some)

    def _write(self, frame: Frame) -> None:
        try:
            pending = self._transport.write(frame)
        except Exception as error:
            self._write_failed(_write_error(error))
            return
        self.stats.messages_out += 1
        if pending is not None:
            self._wait_for_write(pending)

    def _wait_for_write(self, pending: asyncio.Future[None]) -> None:
        """The socket is full: hold further frames until this write is done, for write_wait."""
        self._pending = pending
        pending.add_done_callback(self._written)
        write_wait = self.options.write_wait
        if write_wait is not None:
            self._write_timer = self._loop.call_later(write_wait, self._write_timed_out)

    def _written(self, pending: asyncio.Future[None]) -> None:
        if self._pending is not pending:
            return
        self._pending = None
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if pending.cancelled():
            return
        error = pending.exception()
        if error is not None:
            self._write_failed(WriteFailed(f"write failed: {error!r}"))
            return
        self._flush()

    def _flush(self) -> None:
        """Write queued frames until one has to wait, and let waiting senders in."""
        queue = self._queue
        while self._pending is None and not self._over:
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
        if self._pending is None and not queue:
            drained = self._drained
            if drained is not None:
                self._drained = None
                if not drained.done():
                    drained.set_result(None)

    def _admit_waiting_sender(self) -> bool:
        """Move one blocked sender's frame into the queue; False if none was waiting."""
        waiters = self._room_waiters
        while waiters:
            op = waiters.pop(0)
            if op.waiter.fire(op.index, None, True):
                self._queue.append((op.value, -1))
                self._queued_from_sender += 1
                return True
        return False

    def _write_timed_out(self) -> None:
        self._write_timer = None
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
        wait = self.options.write_wait
        self._write_failed(WriteTimeout(f"a write took longer than write_wait ({wait} s)"))

    def _write_failed(self, error: Exception) -> None:
        if self._over:
            return
        if isinstance(error, WriteTimeout):
            self._log.warning("%s", error)
        else:
            self._log.info("%s", error)
        self.report(error)
        if self._close_code is None:
            self._close_code = CloseCode.ABNORMAL_CLOSURE
        if self._closer is not None:
            self._closer.cancel()
        self._finish()

    # -- errors, closing ------------------------------------------------------------

    def report(self, error: Exception) -> None:
        """Put ``error`` on the handler's ``errors`` channel; never waits."""
        if self._errors._closed:
            return
        if self._errors._push_dropping_oldest(error):
            self.stats.errors_dropped += 1
            self._log.debug("an unread error was dropped")

    def disconnect(self, code: int) -> None:
        """Close with ``code`` after writing what is queued; the first code wins."""
        if self._close_code is not None or self._over:
            return
        self._close_code = code
        self._log.info("closing (code %d)", code)
        self._closer = self._loop.create_task(self._close())

    def add_close_callback(self, callback: Callable[[Connection], None]) -> None:
        """Call ``callback(connection)`` once, when the connection ends."""
        if self._over:
            callback(self)
        else:
            self._close_callbacks.append(callback)

    async def _close(self) -> None:
        code = self._close_code
        assert code is not None
        write_wait = self.options.write_wait
        try:
            if self._pending is not None or self._queue:
                self._drained = drained = self._loop.create_future()
                try:
                    async with asyncio.timeout(write_wait):
                        await drained
                except TimeoutError:
                    self._write_timed_out()
                    return
            if self._over:
                return
            pending = self._transport.close(code)
            if pending is not None:
                try:
                    async with asyncio.timeout(write_wait):
                        await pending
                except TimeoutError:
                    pending.cancel()
        except Exception as error:
            self._log.debug("close frame not sent: %r", error)
        finally:
            self._finish()

    async def ended(self) -> None:
        """Wait until the connection is over (close sent or received)."""
        await asyncio.shield(self._ended)

    def _finish(self) -> None:
        """The connection is over: release everything, keep what the handler may still read."""
        if self._over:
            return
        self._over = True
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        undelivered = len(self._queue)
        if undelivered:
            self.stats.messages_undelivered += undelivered
            self._log.debug("%d queued messages not delivered", undelivered)
        self._queue.clear()
        self.delivered_bytes_queued = 0
        self._queued_from_sender = 0
        waiters, self._room_waiters = self._room_waiters, []
        for op in waiters:
            op.waiter.fail(op.index, ChannelClosed("the connection is closed"))
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if self._written_some is not None and not self._written_some.done():
            self._written_some.set_result(None)
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                self._log.error("close callback %r failed", callback, exc_info=True)
        if not self._ended.done():
            self._ended.set_result(None)
        receiver = self._receiver
        if receiver is None:
            self._set_done()
            return
        receiver.close()
        if not receiver._buffer:
            self._set_done()
        else:
            # A handler that never reads its receiver must still see done: give it
            # pong_wait to take what the client sent, then discard the rest.
            grace = self.options.pong_wait or 60.0
            self._drain_timer = self._loop.call_later(grace, self._grace_over)

    def _grace_over(self) -> None:
        self._drain_timer = None
        self._discard_unread()

    def _receiver_drained(self) -> None:
        if self._over:
            self._set_done()

    def _discard_unread(self) -> None:
        """Drop what the handler did not receive: it returned, or ignored its receiver."""
        receiver = self._receiver
        if receiver is not None and receiver._buffer:
            unread = len(receiver._buffer)
            self.stats.messages_discarded += unread
            if self._drain_timer is None:  # the grace period ran out
                self._log.warning("%d received messages were never read", unread)
            else:
                self._log.debug("%d received messages were never read", unread)
            receiver._buffer.clear()
        self._set_done()

    def _set_done(self) -> None:
        if self.done.is_set():
            return
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        self._errors.close()
        self.done._set()

    # -- running a handler ------------------------------------------------------------

    async def run(self, handler: Awaitable[None]) -> None:
        """Run the handler, then close with its outcome: 1000, its code, or 1011."""
        try:
            await handler
        except ChannelClosed:
            if not self.closed:
                self._log.error("handler failed", exc_info=True)
                self.disconnect(CloseCode.INTERNAL_SERVER_ERR)
        except asyncio.CancelledError:
            self.disconnect(CloseCode.GOING_AWAY)
            await self._wait_closed()
            raise
        except Exception:
            self._log.error("handler failed", exc_info=True)
            self.disconnect(CloseCode.INTERNAL_SERVER_ERR)
        else:
            self.disconnect(CloseCode.NORMAL_CLOSURE)
        await self._wait_closed()

    async def _wait_closed(self) -> None:
        closer = self._closer
        if closer is not None and not closer.done():
            try:
                await asyncio.shield(closer)
            except asyncio.CancelledError:
                if not closer.cancelled():
                    raise
        if not self._over:
            self._finish()
        if self._drain_timer is not None:
            # The handler returned: nobody will read what is left.
            self._discard_unread()

    def _log_connected(self) -> None:
        self._log.info("connected")

    def stats_snapshot(self) -> dict[str, Any]:
        """The counters as a dict (for status pages and tests)."""
        return {name: getattr(self.stats, name) for name in ConnectionStats.__slots__}
