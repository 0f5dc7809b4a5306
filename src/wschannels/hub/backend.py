"""What a Hub needs from a backend: carry publishes to other processes, keep history, presence."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, NamedTuple, Protocol

from ..codecs import Frame
from .errors import BackendUnavailable
from .positions import Position

__all__ = [
    "Backend",
    "Entry",
    "Frames",
    "Outgoing",
    "PresenceChanged",
    "Receive",
    "SharedBackend",
    "describe",
    "frame_size",
]


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

    @property
    def nbytes(self) -> int:
        return self.json_nbytes + self.plain_nbytes


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


class Entry(NamedTuple):
    """One message kept in a room's history."""

    position: Position
    frames: Frames


class Outgoing:
    """A publish waiting in the hub's outbox for the backend.

    ``excluded`` is the hub's id for a member of this process that must not
    get the message (0: none); it only matters when the message comes back
    from the backend, in a room with history.
    """

    __slots__ = ("excluded", "frames", "nbytes", "room")

    def __init__(self, room: str, frames: Frames, excluded: int) -> None:
        self.room = room
        self.frames = frames
        self.excluded = excluded
        self.nbytes = frames.nbytes + len(room)


Receive = Callable[[str, Frames, Position | None, int], Awaitable[None] | None]
"""The hub's entry for a message from the backend: ``(room, frames, position, excluded)``.

``position`` is set in a room with history; ``excluded`` is the hub's member
id from :class:`Outgoing` when the message was published by this process, else
0. Returns an awaitable only when delivery must wait (the ``block`` policy).
"""

PresenceChanged = Callable[[str], None]
"""Called with a room's name when its presence may have changed elsewhere."""


class Backend(Protocol):
    """How a Hub reaches the other processes; the in-process backend reaches none."""

    name: str
    """``"memory"``, ``"redis"``, ``"redis-cluster"`` or ``"nats"``."""
    url: str
    """Where it is, for messages (a password replaced by ``***``)."""
    remote: bool
    """Whether publishes leave the process (then every kind's frame is encoded)."""
    connected: bool
    received: int
    reconnects: int
    failures: int

    @property
    def subscriptions(self) -> int:
        """Rooms this process is subscribed to in the backend."""

    async def start(self, receive: Receive, presence_changed: PresenceChanged) -> None:
        """Connect; raise ``BackendUnavailable`` (naming the URL) if that cannot be done."""

    async def stop(self) -> None:
        """Disconnect and withdraw this process's members from presence."""

    def room_changed(self, room: str, members: dict[str, Any]) -> None:
        """This process's members of ``room`` are now ``members`` (id: info; empty: none).

        Never waits; the change reaches the backend in the background.
        """

    async def synced(self) -> None:
        """Wait (bounded) until every ``room_changed`` so far is in effect in the backend."""

    async def send(self, batch: list[Outgoing], history: bool) -> list[Position | None]:
        """Publish ``batch`` in order; with ``history``, append each to its room's history.

        Called by the hub's outbox task only, one batch at a time. Returns each
        message's position (None without history).

        Raises:
            BackendUnavailable: the backend did not take the batch.
        """

    async def presence(self, room: str) -> dict[str, Any]:
        """Every live member of ``room`` in every process: a unique key -> its info.

        Raises:
            BackendUnavailable: the backend could not answer within its timeout.
        """

    async def history(self, room: str) -> tuple[list[Entry], Position | None]:
        """The messages ``room``'s history still keeps, oldest first, and its latest position.

        Raises:
            BackendUnavailable: the backend could not answer within its timeout.
        """


class SharedBackend:
    """What the backends shared by processes (Redis, NATS) do alike.

    This process's members are kept by room. ``room_changed`` records a
    room's members and wakes the backend's sync task, which applies the
    changed (``_dirty``) rooms a batch at a time and resolves ``_batch``
    when one is applied; ``synced`` waits for that, bounded by the timeout.
    A subclass sets these attributes in its ``__init__`` and names its
    server in ``server``.
    """

    server: ClassVar[str]
    url: str
    connected: bool
    failures: int
    _members: dict[str, dict[str, Any]]
    _dirty: set[str]
    _wake: asyncio.Event
    _batch: asyncio.Future[None] | None
    _timeout: float
    _log: logging.Logger

    def room_changed(self, room: str, members: dict[str, Any]) -> None:
        if members:
            self._members[room] = members
        else:
            self._members.pop(room, None)
        self._dirty.add(room)
        self._wake.set()

    async def synced(self) -> None:
        batch = self._batch
        if not self.connected or batch is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.shield(batch)
        except TimeoutError:
            self._log.warning(
                "hub: %s at %s did not confirm room changes within %s s; they apply when it "
                "answers",
                self.server,
                self.url,
                self._timeout,
            )

    def _unreachable(self, what: str) -> BackendUnavailable:
        self.failures += 1
        return BackendUnavailable(f"{self.url} is unreachable (the hub is reconnecting): {what}")


def describe(error: BaseException, timeout: float) -> str:
    """An error for a log line: its type and text, or what a bare timeout means."""
    if isinstance(error, TimeoutError) and not str(error):
        return f"no answer within {timeout} s"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
