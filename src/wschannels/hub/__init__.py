"""Rooms and fan-out: ``Hub()`` in one process, ``Hub("redis://...")`` across many."""

from .errors import BackendUnavailable, SlowConsumer, SlowConsumerPolicy
from .hub import Hub, HubStatistics

__all__ = ["BackendUnavailable", "Hub", "HubStatistics", "SlowConsumer", "SlowConsumerPolicy"]
