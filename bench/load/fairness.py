"""Fairness: 100 well-behaved clients' echo latency, alone and beside one client flooding.

Each well-behaved client sends one message, waits for its echo, pauses about `--pace` seconds
(jittered, so the clients do not move in step) and repeats; the flooder keeps
`--flood-window` messages in flight on one connection, as fast as the server takes them. The
same phases run one after the other on the same server, from this one process.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.harness import raise_open_files_limit
from bench.load import emit, origin_of, percentiles

MESSAGE = b"0123456789abcdef0123456789abcdef"


class Polite(WSListener):
    def __init__(self) -> None:
        self.reply: asyncio.Future[None] | None = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT and self.reply is not None and not self.reply.done():
            self.reply.set_result(None)


class Flooder(WSListener):
    def __init__(self, window: int, size: int) -> None:
        self.window = window
        self.payload = b"f" * size
        self.echoed = 0
        self.transport: WSTransport | None = None
        self.running = True

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        for _ in range(self.window):
            transport.send(WSMsgType.TEXT, self.payload)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.echoed += 1
            if self.running:
                transport.send(WSMsgType.TEXT, self.payload)


async def polite_loop(url: str, pace: float, until: float, rtts: list[float]) -> None:
    transport, client = await ws_connect(Polite, url, extra_headers={"Origin": origin_of(url)})
    assert isinstance(client, Polite)
    loop = asyncio.get_running_loop()
    # Spread the clients out: in step, 100 clients would measure their own burst.
    await asyncio.sleep(random.uniform(0, pace))
    while time.monotonic() < until:
        client.reply = loop.create_future()
        t0 = time.perf_counter()
        transport.send(WSMsgType.TEXT, MESSAGE)
        await asyncio.wait_for(client.reply, 30)
        rtts.append(time.perf_counter() - t0)
        await asyncio.sleep(random.uniform(0.5 * pace, 1.5 * pace))
    transport.disconnect()


async def phase(args: argparse.Namespace, flood: bool) -> dict[str, Any]:
    flooder: Flooder | None = None
    flood_transport: WSTransport | None = None
    if flood:
        flood_transport, client = await ws_connect(
            lambda: Flooder(args.flood_window, args.flood_size), args.url,
            extra_headers={"Origin": origin_of(args.url)},
        )  # fmt: skip
        assert isinstance(client, Flooder)
        flooder = client
        await asyncio.sleep(1)  # the flood is at full speed before measuring
    rtts: list[float] = []
    until = time.monotonic() + args.duration
    start_echoed = flooder.echoed if flooder else 0
    t0 = time.monotonic()
    await asyncio.gather(*(polite_loop(args.url, args.pace, until, rtts)
                           for _ in range(args.clients)))  # fmt: skip
    seconds = time.monotonic() - t0
    result: dict[str, Any] = {}
    if flooder is not None and flood_transport is not None:
        flooder.running = False
        result["flood_messages_per_second"] = (flooder.echoed - start_echoed) / seconds
        flood_transport.disconnect()
    p50, p90, p99, top = percentiles(rtts, [50, 90, 99, 100])
    result |= {"samples": len(rtts), "rtt_ms": {"p50": p50 * 1e3, "p90": p90 * 1e3,
                                                "p99": p99 * 1e3, "max": top * 1e3}}  # fmt: skip
    return result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    alone = await phase(args, flood=False)
    await asyncio.sleep(1)
    flooded = await phase(args, flood=True)
    return {
        "clients": args.clients,
        "pace_seconds": args.pace,
        "flood_window": args.flood_window,
        "flood_size": args.flood_size,
        "alone": alone,
        "with_flooder": flooded,
        "p99_factor": flooded["rtt_ms"]["p99"] / alone["rtt_ms"]["p99"],
        "p50_factor": flooded["rtt_ms"]["p50"] / alone["rtt_ms"]["p50"],
    }


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--pace", type=float, default=0.02)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--flood-window", type=int, default=256)
    p.add_argument("--flood-size", type=int, default=32)
    p.add_argument("--server-pid", type=int, required=False)
    return p.parse_args()


if __name__ == "__main__":
    raise_open_files_limit()
    emit(uvloop.run(main(parse())))
