"""What a Hub needs from a backend: carry a publish to the other processes, and count."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from ..codecs import Frame

__all__ = ["Backend", "Frames", "Receive", "frame_size"]


class Frames:
    """One message, encoded once per wire kind: the bytes every member of that kind gets.

    ``json`` is the frame for ``json(Model)`` members; ``plain`` the frame for
    ``messages()`` / ``bytes_messages()`` / ``raw()`` members, present only
    when the message is ``str`` or ``bytes``. A ``str`` frame is a text frame,
    ``bytes`` a binary one; each comes with its size in bytes on the wire.
    """

    __slots__ = ("json", "json_nbytes", "plain", "plain_nbytes")

    def __init__(self, json: Frame | None, plain: Frame | None) -> None:
        self.json = json
        self.json_nbytes = 0 if json is None else frame_size(json)
        self.plain = plain
        self.plain_nbytes = 0 if plain is None else frame_size(plain)


def frame_size(frame: Frame) -> int:
    """Bytes of a frame's payload on the wire (a text frame's UTF-8 length).

    An empty frame counts as one byte, so every queued frame has a size and
    dropping one always shows.
    """
    if type(frame) is str:
        size = len(frame) if frame.isascii() else len(frame.encode())
    else:
        size = len(frame)
    return size or 1


Receive = Callable[[str, Frames], Awaitable[None] | None]
"""The hub's entry for a message from another process: deliver ``Frames`` to room members.

Returns an awaitable only when delivery must wait (the ``block`` policy).
"""


class Backend(Protocol):
    """How a Hub reaches the other processes; the in-process backend reaches none."""

    name: str
    """``"memory"`` or ``"redis"``."""
    remote: bool
    """Whether publishes leave the process (then every kind's frame is encoded)."""
    connected: bool
    received: int
    reconnects: int
    failures: int

    @property
    def subscriptions(self) -> int:
        """Rooms this process is subscribed to in the backend."""

    async def start(self, receive: Receive) -> None:
        """Connect; raise ``BackendUnavailable`` (naming the URL) if that cannot be done."""

    async def stop(self) -> None:
        """Disconnect and withdraw this process's members from cluster-wide counts."""

    def room_changed(self, room: str, members: int) -> None:
        """This process now has ``members`` members in ``room`` (0: it has none); never waits."""

    async def synced(self) -> None:
        """Wait (bounded) until every ``room_changed`` so far is in effect in the backend."""

    async def publish(self, room: str, frames: Frames) -> None:
        """Send ``frames`` to the other processes' members of ``room``.

        Raises:
            BackendUnavailable: the backend could not take it within its timeout.
        """

    async def count(self, room: str, local: int) -> int:
        """Members of ``room`` in every process, given ``local`` members here.

        Raises:
            BackendUnavailable: the backend could not answer within its timeout.
        """
