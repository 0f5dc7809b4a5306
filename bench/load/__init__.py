"""Load generators (picows + uvloop); each runs as `python -m bench.load.NAME ...` on the load
core and prints one JSON line of results."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# Engine.IO v4 / Socket.IO v5 text packets, enough to talk to python-socketio over a bare
# WebSocket: "0{...}" open, "2"/"3" ping/pong, "40" connect to "/", "42[...]" an event.
SIO_OPEN = b"0"
SIO_PING = b"2"
SIO_PONG = b"3"
SIO_CONNECT = b"40"
SIO_EVENT = b"42"


def sio_event(name: str, data: Any = None) -> bytes:
    """The packet for `emit(name, data)` to the default namespace."""
    args = [name] if data is None else [name, data]
    return SIO_EVENT + json.dumps(args, separators=(",", ":")).encode()


def socketio_url(base: str) -> str:
    """The WebSocket-only Engine.IO endpoint at `base` (ws://host:port)."""
    return base.rstrip("/") + "/socket.io/?EIO=4&transport=websocket"


def origin_of(url: str) -> str:
    """The Origin a browser on the server's own page would send (same host and port)."""
    host = url.split("://", 1)[1].split("/", 1)[0]
    return f"http://{host}"


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentiles(values: Sequence[float], points: Sequence[float]) -> list[float]:
    """Nearest-rank percentiles of `values` (need not be sorted) at `points` (0-100)."""
    if not values:
        return [float("nan")] * len(points)
    ordered = sorted(values)
    last = len(ordered) - 1
    return [ordered[min(last, round(p / 100 * last))] for p in points]


# Points kept for drawing latency distributions without shipping every sample.
CDF_POINTS = [0.0, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97.5, 99, 99.5, 99.9, 100]


async def gather_limited(
    factories: Sequence[Callable[[], Awaitable[T]]], limit: int
) -> list[T]:
    """Await each factory's coroutine with at most `limit` in flight, results in order.

    Opening thousands of connections at once overflows the server's accept backlog.
    """
    sem = asyncio.Semaphore(limit)

    async def one(make: Callable[[], Awaitable[T]]) -> T:
        async with sem:
            return await make()

    return await asyncio.gather(*(one(f) for f in factories))


def emit(result: dict[str, Any]) -> None:
    """Print the result line the orchestrator reads."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
