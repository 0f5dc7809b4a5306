"""Rooms and fan-out: ``Hub()`` in one process; over Redis or NATS across many."""

from .errors import BackendUnavailable, CannotRecover, SlowConsumer, SlowConsumerPolicy
from .hub import Hub, HubStatistics, PresenceEvent
from .positions import Position

__all__ = [
    "BackendUnavailable",
    "CannotRecover",
    "Hub",
    "HubStatistics",
    "Position",
    "PresenceEvent",
    "SlowConsumer",
    "SlowConsumerPolicy",
]
