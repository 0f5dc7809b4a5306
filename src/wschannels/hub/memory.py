"""The in-process backend (``Hub()`` or ``Hub("memory://")``): the process is the cluster.

The hub delivers every publish to its local members itself, so nothing is
left for this backend to carry: it only answers counts with the local ones.
"""

from __future__ import annotations

from .backend import Frames, Receive

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """A backend with no other processes."""

    name = "memory"
    remote = False

    def __init__(self) -> None:
        self.connected = True
        self.received = 0
        self.reconnects = 0
        self.failures = 0

    @property
    def subscriptions(self) -> int:
        return 0

    async def start(self, receive: Receive) -> None:
        return None

    async def stop(self) -> None:
        return None

    def room_changed(self, room: str, members: int) -> None:
        return None

    async def synced(self) -> None:
        return None

    async def publish(self, room: str, frames: Frames) -> None:
        return None

    async def count(self, room: str, local: int) -> int:
        return local
