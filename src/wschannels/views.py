"""The directional views a handler declares by annotation.

``Receiver[T]``, ``Done`` and ``Errors`` can only be received from;
``Sender[T]`` and ``Disconnect`` can only be sent to. Each is a valid
:func:`~wschannels.select` case, and ``select`` hands back the very view
object that was passed, so ``if chosen is receiver:`` works.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .channels import Channel, ChannelClosed, WouldBlock, _Op, _Selectable, _wait
from .close_codes import CloseCode, check_sendable

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["Disconnect", "Done", "Errors", "Receiver", "Sender"]

T = TypeVar("T")


class _ConnectionView(Generic[T]):
    """Receive-only access to a channel the connection owns.

    In ``select`` it is ready while items are waiting; at the end it simply
    stops being ready and ``done`` takes over, so a seed-style loop over
    ``select(receiver, errors, done)`` sees every item first and never an
    empty ``ok=False`` result. ``recv()`` raises ``ChannelClosed`` and
    ``async for`` stops once the connection is over and all was received.
    """

    __slots__ = ("_done", "_selectable")

    def __init__(self, channel: Channel[T], done: Done) -> None:
        self._selectable = channel
        self._done = done

    async def recv(self) -> T:
        """Receive the next item, waiting for one.

        Raises:
            ChannelClosed: the connection is over and every item was received.
        """
        channel = self._selectable
        ready, value, _ = channel._poll_recv()
        if ready:
            return value  # type: ignore[no-any-return]
        if channel._closed:
            raise ChannelClosed("the connection is over and every item was received")
        chosen, value, _ = await _wait(
            (channel, self._done), (False, False), (None, None), None
        )
        if chosen is self._done:
            raise ChannelClosed("the connection is over and every item was received")
        return value  # type: ignore[no-any-return]

    def recv_nowait(self) -> T:
        """Receive an item if one is ready.

        Raises:
            WouldBlock: nothing to receive yet.
            ChannelClosed: the connection is over and every item was received.
        """
        channel = self._selectable
        ready, value, _ = channel._poll_recv()
        if ready:
            return value  # type: ignore[no-any-return]
        if channel._closed:
            raise ChannelClosed("the connection is over and every item was received")
        raise WouldBlock

    @property
    def closed(self) -> bool:
        """True once the connection is over (buffered items may remain)."""
        return self._selectable.closed

    def __len__(self) -> int:
        return len(self._selectable)

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        while True:
            try:
                item = await self.recv()
            except ChannelClosed:
                return
            yield item


class Receiver(_ConnectionView[T]):
    """Messages from the client, decoded by the binding (the seed's ``<-chan *Message``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<Receiver {len(self._selectable)} buffered>"


class Errors(_ConnectionView[Exception]):
    """What went wrong on the connection: invalid messages, sizes, write failures.

    The library never waits on it: when the handler does not read it, the
    oldest errors are dropped and counted.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<Errors {len(self._selectable)} buffered>"


class Sender(_Selectable, Generic[T]):
    """Messages to the client (the seed's ``chan<- *Message``).

    An item is encoded at the ``send`` call, so an item that cannot be encoded
    raises there, in the handler. Items are written in order; up to
    ``send_channel_buffer`` may wait while a write is in progress.
    """

    __slots__ = ("_connection",)

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def __repr__(self) -> str:
        return f"<Sender of {self._connection.peer}>"

    async def send(self, item: T) -> None:
        """Send ``item`` to the client, waiting only while the send buffer is full.

        Raises:
            TypeError, ValueError: the binding cannot encode ``item``.
            ChannelClosed: the connection is over.
        """
        frame = self._connection.codec.encode(item)
        if not self._connection._offer(frame):
            await _wait((self,), (True,), (frame,), None)

    def send_nowait(self, item: T) -> None:
        """Send ``item`` if that needs no wait; raises ``WouldBlock`` otherwise."""
        if not self._connection._offer(self._connection.codec.encode(item)):
            raise WouldBlock

    def _prepare_send(self, value: Any) -> Any:
        return self._connection.codec.encode(value)

    def _poll_send(self, value: Any) -> bool:
        return self._connection._offer(value)

    def _register_send(self, op: _Op) -> None:
        self._connection._room_waiters.append(op)

    def _unregister_send(self, op: _Op) -> None:
        try:
            self._connection._room_waiters.remove(op)
        except ValueError:
            pass


class Done(_Selectable):
    """Ready once the connection is over and every message the client sent was received.

    Like a closed channel it stays ready: every receive gives ``True``.
    """

    __slots__ = ("_is_set", "_puller", "_waiters")

    def __init__(self) -> None:
        self._is_set = False
        self._waiters: list[_Op] = []
        self._puller: Any = None

    def __repr__(self) -> str:
        return f"<Done {'set' if self._is_set else 'pending'}>"

    def is_set(self) -> bool:
        """Whether the connection is over."""
        return self._is_set

    async def recv(self) -> bool:
        """Wait until the connection is over; returns True."""
        if not self._is_set:
            await _wait((self,), (False,), (None,), None)
        return True

    wait = recv

    def _set(self) -> None:
        if self._is_set:
            return
        self._is_set = True
        waiters, self._waiters = self._waiters, []
        for op in waiters:
            op.waiter.fire(op.index, True, True)

    def _poll_recv(self) -> tuple[bool, Any, bool]:
        if self._is_set:
            return True, True, True
        return False, None, False

    def _register_recv(self, op: _Op) -> None:
        self._waiters.append(op)

    def _put_back(self, value: Any) -> None:
        """Nothing to give back: ``done`` stays ready for every receiver."""

    def _unregister_recv(self, op: _Op) -> None:
        try:
            self._waiters.remove(op)
        except ValueError:
            pass


class Disconnect(_Selectable):
    """Takes a close code and closes the connection with it (the seed's ``chan<- int``).

    The first code wins, whichever side ends first: a code sent here is the
    code the client sees even when the handler returns right after. Items
    sent before it reach the client first, within ``write_wait``.
    """

    __slots__ = ("_connection",)

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def __repr__(self) -> str:
        return f"<Disconnect of {self._connection.peer}>"

    async def send(self, code: int = CloseCode.NORMAL_CLOSURE) -> None:
        """Close the connection with ``code``; never waits.

        Raises:
            ValueError: ``code`` may not be sent on the wire (1005, 1006, 1015, out of range).
        """
        self._connection.disconnect(check_sendable(code))

    def send_nowait(self, code: int = CloseCode.NORMAL_CLOSURE) -> None:
        """Same as :meth:`send`, for code that is not async."""
        self._connection.disconnect(check_sendable(code))

    def _prepare_send(self, value: Any) -> Any:
        return check_sendable(value)

    def _poll_send(self, value: Any) -> bool:
        self._connection.disconnect(value)
        return True


