"""The directional views a handler declares by annotation.

``Receiver[T]``, ``Done`` and ``Errors`` can only be received from;
``Sender[T]`` and ``Disconnect`` can only be sent to. Each is a valid
:func:`~wschannels.select` case, and ``select`` hands back the very view
object that was passed, so ``if chosen is receiver:`` works. A receiver is
covariant in its item type and a sender contravariant, as trio's and anyio's
stream ends are: a ``Receiver[Child]`` is a ``Receiver[Base]``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Generic, TypeVar

# The select protocol (Selectable, Operation, wait_for, the _poll_* hooks) is shared
# with channels.py, which documents it: the views are select cases too.
from .channels import Channel, Operation, Selectable, fairness, wait_for
from .close_codes import CloseCode, check_sendable
from .engine import Connection, Done, State
from .errors import ChannelClosed, WouldBlock

__all__ = ["Disconnect", "Done", "Errors", "Receiver", "Sender", "connection_of"]

T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)


class _ConnectionView(Generic[T_co]):
    """Receive-only access to a channel the connection owns.

    In ``select`` it is ready while items are waiting; at the end it simply
    stops being ready and ``done`` takes over, so a loop over
    ``select(receiver, errors, done)`` sees every item first and never an
    empty ``ok=False`` result. ``recv()`` raises ``ChannelClosed`` and
    ``async for`` stops once the connection is over and all was received.
    """

    __slots__ = ("_connection", "_done", "_selectable")

    def __init__(self, channel: Channel[T_co], connection: Connection) -> None:
        self._selectable = channel
        self._connection = connection
        self._done = connection.done

    async def recv(self) -> T_co:
        """Receive the next item, waiting for one.

        Raises:
            ChannelClosed: the connection is over and every item was received.
        """
        if fairness.streak >= fairness.SHARE:  # see channels._Fairness
            await asyncio.sleep(0)
            fairness.streak = 0
        fairness.streak += 1
        channel = self._selectable
        ready, value, _ = channel._poll_recv()
        if ready:
            return value  # type: ignore[no-any-return]
        done = self._done
        if not done._poll_recv()[0]:
            chosen, value, _ = await wait_for((channel, done), (False, False), (None, None), None)
            if chosen is channel:
                return value  # type: ignore[no-any-return]
        raise ChannelClosed("the connection is over and every item was received")

    def recv_nowait(self) -> T_co:
        """Receive an item if one is ready.

        Raises:
            WouldBlock: nothing to receive yet.
            ChannelClosed: the connection is over and every item was received.
        """
        ready, value, _ = self._selectable._poll_recv()
        if ready:
            return value  # type: ignore[no-any-return]
        if self._done._poll_recv()[0]:
            raise ChannelClosed("the connection is over and every item was received")
        raise WouldBlock

    @property
    def closed(self) -> bool:
        """True once the connection is over (buffered items may remain)."""
        return self._connection.state is State.CLOSED

    def __len__(self) -> int:
        return len(self._selectable)

    def __aiter__(self) -> _ConnectionView[T_co]:
        return self

    async def __anext__(self) -> T_co:
        """``async for item in view``: the loop ends once the connection is over and drained."""
        try:
            return await self.recv()
        except ChannelClosed:
            raise StopAsyncIteration from None


class Receiver(_ConnectionView[T_co]):
    """Messages from the client, decoded by the binding (Go's ``<-chan *Message``)."""

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


class Sender(Selectable, Generic[T_contra]):
    """Messages to the client (Go's ``chan<- *Message``).

    An item is encoded at the ``send`` call, so an item that cannot be encoded
    raises there, in the handler. Items are written in order; up to
    ``send_channel_buffer`` may wait while a write is in progress.
    """

    __slots__ = ("_connection", "_encode")

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._encode = connection.codec.encode

    def __repr__(self) -> str:
        return f"<Sender of {self._connection.peer}>"

    async def send(self, item: T_contra) -> None:
        """Send ``item`` to the client, waiting only while the send buffer is full.

        Raises:
            TypeError, ValueError: the binding cannot encode ``item``.
            ChannelClosed: the connection is over.
        """
        frame = self._encode(item)
        if fairness.streak >= fairness.SHARE:  # see channels._Fairness
            await asyncio.sleep(0)
            fairness.streak = 0
        fairness.streak += 1
        if not self._connection.offer(frame):
            await wait_for((self,), (True,), (frame,), None)

    def send_nowait(self, item: T_contra) -> None:
        """Send ``item`` if that needs no wait; raises ``WouldBlock`` otherwise."""
        if not self._connection.offer(self._encode(item)):
            raise WouldBlock

    def _prepare_send(self, value: Any) -> Any:
        return self._encode(value)

    def _poll_send(self, value: Any) -> bool:
        return self._connection.offer_in_select(value)

    def _register_send(self, op: Operation) -> None:
        self._connection.wait_for_room(op)

    def _unregister_send(self, op: Operation) -> None:
        self._connection.stop_waiting_for_room(op)


def connection_of(sender: Sender[Any]) -> Connection:
    """The connection behind a handler's ``Sender`` (how a Hub reaches a member).

    Raises:
        TypeError: ``sender`` is not a handler's ``Sender``.
    """
    if not isinstance(sender, Sender):
        raise TypeError(
            f"expected the handler's Sender (e.g. sender: Sender[Message]), got {sender!r}"
        )
    return sender._connection


class Disconnect(Selectable):
    """Takes a close code and closes the connection with it (Go's ``chan<- int``).

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
