"""Process-wide counters and gauges: :func:`stats`, and a Prometheus collector.

Nothing is counted twice on the hot path: every connection already keeps its
own counters (one increment each per message), and this module sums them on
demand — the live connections' from the set each joins when it opens, the ended ones' from the
totals each one adds when it ends. A hub is summed the same way from its
:meth:`~wschannels.Hub.statistics`. So a snapshot costs a walk over the live
connections, and a message costs nothing more than before.

With ``prometheus_client`` installed (the ``metrics`` extra),
:func:`metrics_endpoint` serves them at ``/metrics`` for Starlette and
FastAPI (``app.add_route("/metrics", wschannels.metrics_endpoint)``) and
:func:`aiohttp_metrics` for aiohttp
(``app.router.add_get("/metrics", wschannels.aiohttp_metrics)``).
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .extras import require

if TYPE_CHECKING:
    from .engine import Connection
    from .hub import Hub

__all__ = [
    "BindingStats",
    "HubStats",
    "Stats",
    "aiohttp_metrics",
    "collector",
    "metrics_endpoint",
    "stats",
]


@dataclass
class BindingStats:
    """Messages and bytes through the connections of one binding (``json``, ``messages``, ...)."""

    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    invalid_messages: int = 0
    """Messages that could not be decoded (reported as ``InvalidMessage``)."""
    too_big: int = 0
    """Messages over ``max_message_size`` (closed with 1009)."""
    discarded: int = 0
    undelivered: int = 0
    errors_dropped: int = 0

    def add(self, other: BindingStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class HubStats:
    """Every hub of this process, summed."""

    hubs: int = 0
    rooms: int = 0
    members: int = 0
    outbox_bytes: int = 0
    outbox_refused: int = 0
    reconnects: int = 0
    backend_failures: int = 0
    slow_consumers: dict[str, int] = field(default_factory=dict)
    """Slow consumers dealt with, by policy: disconnect, drop_oldest, drop_newest, block."""


@dataclass
class Stats:
    """A snapshot of :func:`stats`."""

    connections_open: int
    connections_total: int
    bindings: dict[str, BindingStats]
    close_codes: dict[int, int]
    """Connections ended, by close code."""
    hub: HubStats


class _Registry:
    """The live connections and hubs, and what the ended connections counted."""

    def __init__(self) -> None:
        # Held strongly: a compiled Connection takes no weak reference, and every connection
        # leaves this set when it ends (ended_with), as its transport reports the close.
        self.connections: set[Connection] = set()
        self.hubs: weakref.WeakSet[Hub] = weakref.WeakSet()
        self.total = 0
        self.ended: dict[str, BindingStats] = {}
        self.close_codes: Counter[int] = Counter()

    def opened(self, connection: Connection) -> None:
        self.connections.add(connection)
        self.total += 1

    def ended_with(self, connection: Connection) -> None:
        """Fold an ended connection's counters into the totals (once, when it ends)."""
        self.connections.discard(connection)
        binding = self.ended.get(connection.binding)
        if binding is None:
            binding = self.ended[connection.binding] = BindingStats()
        binding.add(_binding_stats(connection))
        self.close_codes[connection.close_code or 1006] += 1


registry = _Registry()


def _binding_stats(connection: Connection) -> BindingStats:
    counted = connection.statistics()
    return BindingStats(
        messages_in=counted.messages_in,
        messages_out=counted.messages_out,
        bytes_in=counted.bytes_in,
        bytes_out=counted.bytes_out,
        invalid_messages=counted.invalid_messages,
        too_big=counted.too_big,
        discarded=counted.messages_discarded,
        undelivered=counted.messages_undelivered,
        errors_dropped=counted.errors_dropped,
    )


def stats() -> Stats:
    """Counters and gauges of this process: connections, per binding, close codes, hubs."""
    bindings: dict[str, BindingStats] = {}
    for name, ended in registry.ended.items():
        bindings[name] = BindingStats()
        bindings[name].add(ended)
    live = list(registry.connections)
    for connection in live:
        binding = bindings.get(connection.binding)
        if binding is None:
            binding = bindings[connection.binding] = BindingStats()
        binding.add(_binding_stats(connection))
    hub = HubStats()
    for each in list(registry.hubs):
        counted = each.statistics()
        hub.hubs += 1
        hub.rooms += counted.rooms
        hub.members += counted.members
        hub.outbox_bytes += counted.outbox_bytes
        hub.outbox_refused += counted.outbox_refused
        hub.reconnects += counted.reconnects
        hub.backend_failures += counted.backend_failures
        for policy, count in (
            ("disconnect", counted.slow_consumers_disconnected),
            ("drop_oldest", counted.slow_consumer_dropped_oldest),
            ("drop_newest", counted.slow_consumer_dropped_newest),
            ("block", counted.slow_consumer_waits),
        ):
            hub.slow_consumers[policy] = hub.slow_consumers.get(policy, 0) + count
    return Stats(
        connections_open=len(live),
        connections_total=registry.total,
        bindings=bindings,
        close_codes=dict(registry.close_codes),
        hub=hub,
    )


class _Collector:
    """A ``prometheus_client`` collector over :func:`stats`."""

    def collect(self) -> Iterator[Any]:
        core = require("prometheus_client.core", "metrics", "wschannels metrics")
        gauge, counter = core.GaugeMetricFamily, core.CounterMetricFamily
        snapshot = stats()
        yield gauge(
            "wschannels_connections_open", "WebSocket connections open", snapshot.connections_open
        )
        yield counter(
            "wschannels_connections", "WebSocket connections opened", snapshot.connections_total
        )
        per_binding = [
            ("messages_received", "Messages received from clients", "messages_in"),
            ("messages_sent", "Frames sent to clients", "messages_out"),
            ("received_bytes", "Bytes received from clients", "bytes_in"),
            ("sent_bytes", "Bytes sent to clients", "bytes_out"),
            ("invalid_messages", "Messages that could not be decoded", "invalid_messages"),
            ("too_big_messages", "Messages over max_message_size", "too_big"),
            ("discarded_messages", "Received messages nobody read", "discarded"),
            ("undelivered_messages", "Frames still queued when a connection ended", "undelivered"),
            ("dropped_errors", "Errors dropped unread", "errors_dropped"),
        ]
        for name, documentation, attribute in per_binding:
            family = counter(f"wschannels_{name}", documentation, labels=["binding"])
            for binding, counted in sorted(snapshot.bindings.items()):
                family.add_metric([binding], getattr(counted, attribute))
            yield family
        closes = counter("wschannels_closes", "Connections ended, by close code", labels=["code"])
        for code, count in sorted(snapshot.close_codes.items()):
            closes.add_metric([str(code)], count)
        yield closes
        hub = snapshot.hub
        yield gauge("wschannels_hub_rooms", "Rooms with members in this process", hub.rooms)
        yield gauge("wschannels_hub_members", "Room memberships in this process", hub.members)
        yield gauge(
            "wschannels_hub_outbox_bytes", "Bytes waiting for the backend", hub.outbox_bytes
        )
        yield counter(
            "wschannels_hub_outbox_refused", "Publishes refused at once", hub.outbox_refused
        )
        yield counter("wschannels_hub_backend_reconnects", "Backend reconnections", hub.reconnects)
        yield counter(
            "wschannels_hub_backend_failures", "BackendUnavailable raised", hub.backend_failures
        )
        slow = counter(
            "wschannels_hub_slow_consumers", "Slow consumers, by policy", labels=["policy"]
        )
        for policy, count in sorted(hub.slow_consumers.items()):
            slow.add_metric([policy], count)
        yield slow


_collector = _Collector()


def collector() -> _Collector:
    """The collector to register with a ``prometheus_client`` registry of your own."""
    return _collector


def _exposition() -> tuple[bytes, str]:
    client = require("prometheus_client", "metrics", "the /metrics route")
    registry_type = require("prometheus_client.registry", "metrics", "the /metrics route")
    own = registry_type.CollectorRegistry(auto_describe=False)
    own.register(_collector)
    return client.generate_latest(own), client.CONTENT_TYPE_LATEST


async def metrics_endpoint(request: Any) -> Any:
    """A Starlette/FastAPI route: ``app.add_route("/metrics", wschannels.metrics_endpoint)``."""
    from starlette.responses import Response

    body, content_type = _exposition()
    return Response(body, media_type=content_type)


async def aiohttp_metrics(request: Any) -> Any:
    """An aiohttp handler: ``app.router.add_get("/metrics", wschannels.aiohttp_metrics)``."""
    web = require("aiohttp.web", "aiohttp", "wschannels.aiohttp_metrics")
    body, content_type = _exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})
