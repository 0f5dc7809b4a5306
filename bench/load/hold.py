"""Hold N connections at once: connect time, handshake latency, one echo each, RSS per connection.

RSS is read with `--warm` connections open and with all of them; the difference over the
connections added is the cost of one connection (the server's fixed footprint does not count).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.harness import raise_open_files_limit
from bench.load import emit, origin_of, percentiles
from bench.load.idle import settled_rss


class Held(WSListener):
    def __init__(self) -> None:
        self.echoed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT and not self.echoed.done():
            self.echoed.set_result(None)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.echoed.done():
            self.echoed.set_exception(ConnectionError("disconnected before the echo"))


class Run:
    def __init__(self) -> None:
        self.handshakes: list[float] = []
        self.errors: list[str] = []
        self.error_count = 0


async def open_many(url: str, count: int, limit: int, run: Run) -> list[Held]:
    sem = asyncio.Semaphore(limit)
    held: list[Held] = []

    async def one() -> None:
        async with sem:
            t0 = time.perf_counter()
            try:
                _, client = await ws_connect(Held, url, websocket_handshake_timeout=60,
                                             extra_headers={"Origin": origin_of(url)})  # fmt: skip
            except Exception as e:
                run.error_count += 1
                if len(run.errors) < 5:
                    run.errors.append(repr(e))
                return
            run.handshakes.append(time.perf_counter() - t0)
            assert isinstance(client, Held)
            held.append(client)

    await asyncio.gather(*(one() for _ in range(count)))
    return held


async def main(args: argparse.Namespace) -> dict[str, Any]:
    run = Run()
    warm = await open_many(args.url, args.warm, args.limit, run)
    rss_warm = await settled_rss(args.server_pid)
    t0 = time.perf_counter()
    rest = await open_many(args.url, args.connections - args.warm, args.limit, run)
    connect_seconds = time.perf_counter() - t0
    rss_all = await settled_rss(args.server_pid)
    held = warm + rest
    t1 = time.perf_counter()
    for client in held:
        assert client.transport is not None
        client.transport.send(WSMsgType.TEXT, b"0123456789abcdef0123456789abcdef")
    outcomes = await asyncio.gather(
        *(asyncio.wait_for(asyncio.shield(c.echoed), 60) for c in held), return_exceptions=True
    )
    echo_seconds = time.perf_counter() - t1
    lost = sum(1 for o in outcomes if isinstance(o, BaseException))
    for client in held:
        if client.transport is not None:
            client.transport.disconnect()
    p50, p99, top = percentiles(run.handshakes, [50, 99, 100])
    return {
        "connections": len(held),
        "errors": run.error_count,
        "error_samples": run.errors,
        "lost_echoes": lost,
        "connect_seconds": connect_seconds,
        "connects_per_second": len(rest) / connect_seconds if connect_seconds else 0.0,
        "handshake_ms": {"p50": p50 * 1e3, "p99": p99 * 1e3, "max": top * 1e3},
        "echo_all_seconds": echo_seconds,
        "rss_warm_bytes": rss_warm,
        "rss_bytes": rss_all,
        "kb_per_connection": (rss_all - rss_warm) / max(1, len(rest)) / 1024,
    }


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--warm", type=int, default=500)
    p.add_argument("--limit", type=int, default=100, help="handshakes in flight at once")
    p.add_argument("--server-pid", type=int, required=True)
    return p.parse_args()


if __name__ == "__main__":
    raise_open_files_limit()
    emit(uvloop.run(main(parse())))
