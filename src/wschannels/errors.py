"""Every exception wschannels raises or reports, under one root.

Raised to the caller: :class:`ChannelClosed`, :class:`WouldBlock` (channels),
and the hub's ``BackendUnavailable``. Reported on a handler's ``errors``
channel: :class:`InvalidMessage`, :class:`MessageTooBig`,
:class:`WriteTimeout`, :class:`WriteFailed`, :class:`KeepaliveTimeout`,
:class:`RateLimited`, :class:`ReceiverStalled` and the hub's ``SlowConsumer``.
"""

from __future__ import annotations

__all__ = [
    "ChannelClosed",
    "InvalidMessage",
    "KeepaliveTimeout",
    "MessageTooBig",
    "RateLimited",
    "ReceiverStalled",
    "WouldBlock",
    "WriteFailed",
    "WriteTimeout",
    "WschannelsError",
    "excerpt",
]

# The most characters of client data a log line or an error message carries.
EXCERPT_LENGTH = 200


def excerpt(data: str | bytes, limit: int = EXCERPT_LENGTH) -> str:
    """A short, escaped excerpt of client data, safe to put in a log line."""
    shown = repr(data[:limit])
    if len(data) > limit:
        return f"{shown}... ({len(data)} in all)"
    return shown


class WschannelsError(Exception):
    """The root of every wschannels exception."""


class ChannelClosed(WschannelsError):
    """A send on a closed channel, or a receive from a closed, drained one.

    On a handler's views: a send after the connection ended, or a receive
    once it is over and every message was received.
    """


class WouldBlock(WschannelsError):
    """A ``*_nowait`` operation could not complete at once."""


class InvalidMessage(WschannelsError):
    """A message from the client that the binding could not decode; the connection goes on.

    (With ``close_on_invalid_message`` the connection closes with 1007 instead.)

    Attributes:
        payload: the frame as it arrived (``str`` or ``bytes``), whole.
        reason: why it was rejected (short: it carries no more than an excerpt of the payload).
    """

    def __init__(self, payload: str | bytes, reason: str) -> None:
        reason = reason if len(reason) <= EXCERPT_LENGTH else reason[:EXCERPT_LENGTH] + "..."
        super().__init__(f"invalid message: {reason}")
        self.payload = payload
        self.reason = reason


class MessageTooBig(WschannelsError):
    """The client sent a message over ``max_message_size``; the connection closes with 1009."""


class WriteTimeout(WschannelsError, TimeoutError):
    """A write took longer than ``write_wait``; the connection is given up (1006)."""


class WriteFailed(WschannelsError, ConnectionError):
    """A write failed (the client is gone); the connection is given up (1006)."""


class KeepaliveTimeout(WschannelsError, TimeoutError):
    """Nothing, not even a pong, came from the client for ``pong_wait``; it is gone (1006).

    Reported on the servers where the library pings each connection itself
    (picows and the other frame-level servers); under ASGI the server pings.
    """


class RateLimited(WschannelsError):
    """The client sent faster than ``max_messages_per_second`` or ``max_bytes_per_second``.

    The connection closes with 1008 (policy violation) after what was queued for it.
    """


class ReceiverStalled(WschannelsError):
    """The handler left its receiver full for ``pong_wait`` seconds; the connection closes (1013).

    While the receiver is full the client is held back, and its close or
    pings cannot be read either; closing keeps a stuck handler from pinning
    the connection for good (a fault of the Go original).
    """
