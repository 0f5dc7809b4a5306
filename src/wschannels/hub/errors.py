"""What a Hub raises, and what it puts on a member's ``errors`` channel."""

from __future__ import annotations

import re
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

from ..errors import WschannelsError

__all__ = ["BackendUnavailable", "CannotRecover", "SlowConsumer", "SlowConsumerPolicy", "redact"]


class BackendUnavailable(WschannelsError):
    """The hub's backend (Redis, NATS) cannot take or answer a request now.

    Raised by ``Hub.start`` when the backend is unreachable (the message names
    the URL); by ``publish`` at once when the backend is known to be down or
    the hub's outbox is full, and by ``count`` / ``presence`` while it is away.
    A publish to a room without history that raises it has already reached
    the members in this process: only the other processes missed it. In a
    room with history, the message reached nobody, unless the message says
    that it was sent and not confirmed.
    """


class CannotRecover(WschannelsError):
    """``join(room, sender, since=position)`` cannot give exactly the messages after ``position``.

    The member was not added to the room. Either the room's history no longer
    reaches back that far (it was trimmed by size or TTL), or it is another
    history now (a new epoch: the backend lost it, or the position is from
    another room). The application should start over, e.g. reload the page
    and join without ``since``.

    Attributes:
        room: the room.
        since: the position asked for.
        reason: ``"trimmed"`` or ``"epoch"``.
        position: the room's latest position now (None: it has no history yet).
    """

    def __init__(self, room: str, since: object, reason: str, position: object) -> None:
        what = (
            "its history no longer reaches back that far"
            if reason == "trimmed"
            else "that position is from another history of the room (its epoch changed)"
        )
        super().__init__(
            f"cannot recover room {room!r} from position {str(since)!r}: {what}; "
            f"the room is at {str(position) if position is not None else 'no position yet'}"
        )
        self.room = room
        self.since = since
        self.reason = reason
        self.position = position


class SlowConsumerPolicy(StrEnum):
    """What a Hub does with a member whose queue is over ``max_queued_bytes``.

    Every choice is counted in ``Hub.statistics()``, logged, and put on the
    member's ``errors`` channel as a :class:`SlowConsumer`.
    """

    DISCONNECT = "disconnect"
    """Close the member with 1013 (Try Again Later) and drop what it had queued (default)."""
    DROP_OLDEST = "drop_oldest"
    """Drop the member's oldest queued messages until the new one fits."""
    DROP_NEWEST = "drop_newest"
    """Drop the new message for that member; what it has queued stays."""
    BLOCK = "block"
    """Make ``publish`` wait until the member's queue has room (the Go original's behaviour).

    One stalled member then stalls its publishers and, over Redis, every room
    this process receives: an explicit opt-in, never the default.
    """


_OUTCOMES = {
    SlowConsumerPolicy.DISCONNECT: "closing it with 1013 Try Again Later",
    SlowConsumerPolicy.DROP_OLDEST: "dropped its oldest queued messages",
    SlowConsumerPolicy.DROP_NEWEST: "dropped this message for it",
    SlowConsumerPolicy.BLOCK: "publish waits until it catches up",
}


class SlowConsumer(WschannelsError):
    """A member of a room fell behind: its queue went over the hub's ``max_queued_bytes``.

    Attributes:
        peer: the member's address.
        room: the room whose message did not fit.
        policy: what the hub did about it.
        queued_bytes: bytes the member had queued and not yet written.
        message_bytes: the size of the message that did not fit.
        max_queued_bytes: the hub's bound.
        dropped_bytes: bytes of messages dropped for this member by this choice.
    """

    def __init__(
        self,
        peer: str,
        room: str,
        policy: SlowConsumerPolicy,
        queued_bytes: int,
        message_bytes: int,
        max_queued_bytes: int,
        dropped_bytes: int = 0,
    ) -> None:
        outcome = _OUTCOMES[policy]
        if dropped_bytes:
            outcome += f" ({dropped_bytes} bytes dropped)"
        super().__init__(
            f"slow consumer {peer} in room {room!r}: {queued_bytes} bytes queued, and a "
            f"message of {message_bytes} bytes would go over max_queued_bytes="
            f"{max_queued_bytes}; policy {policy.value}: {outcome}"
        )
        self.peer = peer
        self.room = room
        self.policy = policy
        self.queued_bytes = queued_bytes
        self.message_bytes = message_bytes
        self.max_queued_bytes = max_queued_bytes
        self.dropped_bytes = dropped_bytes


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            user = parts.username or ""
            host = parts.netloc.rsplit("@", 1)[1]
            parts = parts._replace(netloc=f"{user}:***@{host}")
        url = urlunsplit(parts)
    except ValueError:
        pass
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", url)
