"""Positions in a room's history, and the string form clients keep.

A position is ``(offset, epoch)``: ``offset`` counts the messages published
to the room (the first is 1), ``epoch`` names one unbroken run of that count.
When a room's history is lost (the backend restarted empty, the room was idle
past its TTL), numbering starts again under a new epoch, so an old position
can never be mistaken for a new one.
"""

from __future__ import annotations

import re
import secrets
from typing import NamedTuple

__all__ = ["Position", "new_epoch"]

_FORM = re.compile(r"(\d{1,19})\.([A-Za-z0-9_-]{1,32})")


def new_epoch() -> str:
    """A fresh epoch: 8 URL-safe characters."""
    return secrets.token_urlsafe(6)


class Position(NamedTuple):
    """Where a message stands in its room's history: ``str(position)`` is ``"42.k3J_9xQa"``."""

    offset: int
    epoch: str

    def __str__(self) -> str:
        return f"{self.offset}.{self.epoch}"

    @classmethod
    def parse(cls, text: str) -> Position:
        """The position written as ``str(position)``.

        Raises:
            ValueError: ``text`` is not a position; the message quotes (a short
                excerpt of) it.
        """
        match = _FORM.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"not a position: {str(text)[:40]!r} (a position reads OFFSET.EPOCH, "
                "e.g. '42.k3J_9xQa', as the hub gave it)"
            )
        return cls(int(match[1]), match[2])
