"""The in-process backend (``Hub()`` or ``Hub("memory://")``): the process is the cluster.

The hub delivers every publish to its local members itself, so nothing is
left for this backend to carry. It keeps presence (the members the hub told
it about) and, when the hub keeps history, a ring per room: the last
``history_size`` messages, each dropped once older than ``history_ttl``.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from .backend import Entry, Frames, Outgoing, PresenceChanged, Receive
from .positions import Position, new_epoch

__all__ = ["MemoryBackend"]


class _Ring:
    """One room's history: offsets count on under one epoch for the hub's lifetime."""

    __slots__ = ("entries", "epoch", "offset")

    def __init__(self, size: int) -> None:
        self.epoch = new_epoch()
        self.offset = 0
        self.entries: deque[tuple[float, Entry]] = deque(maxlen=size)


class MemoryBackend:
    """A backend with no other processes."""

    name = "memory"
    url = "memory://"
    remote = False

    def __init__(self, history_size: int = 0, history_ttl: float | None = None) -> None:
        self.connected = True
        self.received = 0
        self.reconnects = 0
        self.failures = 0
        self._history_size = history_size
        self._history_ttl = history_ttl
        self._presence: dict[str, dict[str, Any]] = {}
        self._rings: dict[str, _Ring] = {}

    @property
    def subscriptions(self) -> int:
        return 0

    async def start(self, receive: Receive, presence_changed: PresenceChanged) -> None:
        return None

    async def stop(self) -> None:
        self._presence.clear()
        self._rings.clear()  # a hub started again is a new history: a new epoch

    def room_changed(self, room: str, members: dict[str, Any]) -> None:
        if members:
            self._presence[room] = members
        else:
            self._presence.pop(room, None)

    async def synced(self) -> None:
        return None

    async def send(self, batch: list[Outgoing], history: bool) -> list[Position | None]:
        raise AssertionError("the in-process backend sends nothing")

    def append(self, room: str, frames: Frames) -> Position:
        """Keep ``frames`` as ``room``'s next message; returns its position."""
        ring = self._rings.get(room)
        if ring is None:
            ring = self._rings[room] = _Ring(self._history_size)
        ring.offset += 1
        position = Position(ring.offset, ring.epoch)
        ring.entries.append((time.monotonic(), Entry(position, frames)))
        return position

    async def presence(self, room: str) -> dict[str, Any]:
        return dict(self._presence.get(room, ()))

    async def history(self, room: str) -> tuple[list[Entry], Position | None]:
        ring = self._rings.get(room)
        if ring is None:
            return [], None
        if self._history_ttl is not None:
            oldest = time.monotonic() - self._history_ttl
            while ring.entries and ring.entries[0][0] < oldest:
                ring.entries.popleft()
        current = Position(ring.offset, ring.epoch) if ring.offset else None
        return [entry for _, entry in ring.entries], current
