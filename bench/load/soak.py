"""Soak: C workers churn (connect to /room, one echo, close) for a while; /stats is sampled.

Prints the samples and a leak verdict: the server's tasks, handlers and hub members back to
their idle values after the churn, gc objects and RSS compared with the first minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.harness import raise_open_files_limit
from bench.load import emit, origin_of

MESSAGE = b"0123456789abcdef0123456789abcdef"


class Once(WSListener):
    def __init__(self) -> None:
        self.echoed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, MESSAGE)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()
        elif (
            frame.msg_type == WSMsgType.TEXT
            and frame.get_payload_as_bytes() == MESSAGE
            and not self.echoed.done()
        ):
            self.echoed.set_result(None)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.echoed.done():
            self.echoed.set_exception(ConnectionError("disconnected before the echo"))


class Stats(WSListener):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.replies.put_nowait(json.loads(frame.get_payload_as_bytes()))


class Counts:
    def __init__(self) -> None:
        self.stopping = False
        self.cycles = 0
        self.errors = 0
        self.samples: list[str] = []


async def cycle(url: str) -> None:
    """Connect, one echo, close, until the TCP connection is gone."""
    headers = {"Origin": origin_of(url)}
    transport, client = await ws_connect(Once, url, extra_headers=headers)
    assert isinstance(client, Once)
    await asyncio.wait_for(client.echoed, 10)
    transport.send_close()
    await asyncio.wait_for(transport.wait_disconnected(), 10)


async def worker(url: str, counts: Counts) -> None:
    while not counts.stopping:
        try:
            await cycle(url)
            counts.cycles += 1
        except Exception as e:
            counts.errors += 1
            if len(counts.samples) < 5:
                counts.samples.append(repr(e))
            await asyncio.sleep(0.05)


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 60


async def main(args: argparse.Namespace) -> dict[str, Any]:
    base = args.url.rstrip("/")
    stats_transport, stats_client = await ws_connect(
        Stats, base + "/stats", extra_headers={"Origin": origin_of(base)}
    )
    assert isinstance(stats_client, Stats)

    async def sample() -> dict[str, Any]:
        stats_transport.send(WSMsgType.TEXT, b"?")
        return await asyncio.wait_for(stats_client.replies.get(), 30)

    # One churn cycle first, so the hub and every lazily built structure exist at baseline.
    await cycle(base + "/room")
    await asyncio.sleep(1)
    idle_before = await sample()
    counts = Counts()
    started = time.monotonic()
    tasks = [asyncio.create_task(worker(base + "/room", counts)) for _ in range(args.concurrency)]
    samples: list[dict[str, Any]] = []
    end = started + args.minutes * 60
    while time.monotonic() < end:
        await asyncio.sleep(max(0.0, min(args.sample, end - time.monotonic())))
        reading = await sample()
        reading["seconds"] = time.monotonic() - started
        reading["cycles"] = counts.cycles
        samples.append(reading)
    counts.stopping = True
    await asyncio.wait(tasks, timeout=30)
    seconds = time.monotonic() - started
    await asyncio.sleep(2)
    idle_after = await sample()
    stats_transport.disconnect()
    later = [s for s in samples if s["seconds"] >= 60] or samples
    rss_trend = slope_per_minute([(s["seconds"], s["rss_bytes"]) for s in later])
    gc_trend = slope_per_minute([(s["seconds"], s["gc_objects"]) for s in later])
    return {
        "minutes": args.minutes,
        "concurrency": args.concurrency,
        "seconds": seconds,
        "cycles": counts.cycles,
        "cycles_per_second": counts.cycles / seconds,
        "errors": counts.errors,
        "error_samples": counts.samples,
        "idle_before": idle_before,
        "idle_after": idle_after,
        "rss_trend_bytes_per_minute_after_first_minute": rss_trend,
        "gc_objects_trend_per_minute_after_first_minute": gc_trend,
        "samples": samples,
    }


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True, help="ws://host:port of the reliability app")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--sample", type=float, default=10.0, help="seconds between /stats samples")
    p.add_argument("--server-pid", type=int, required=False)
    return p.parse_args()


if __name__ == "__main__":
    raise_open_files_limit()
    emit(uvloop.run(main(parse())))
