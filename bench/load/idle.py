"""Idle connections: the server's RSS per connection held open after one echo each.

RSS is read twice, with `--warm` connections open and with all of them, and the difference
is divided by the connections added, so the server's fixed footprint does not count.
Each connection first gets one echo back, so its handler is running, then stays silent.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.harness import raise_open_files_limit, rss_bytes
from bench.load import emit, gather_limited, origin_of


class Idle(WSListener):
    def __init__(self) -> None:
        self.echoed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        transport.send(WSMsgType.TEXT, b"0123456789abcdef0123456789abcdef")

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT and not self.echoed.done():
            self.echoed.set_result(None)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.echoed.done():
            self.echoed.set_exception(ConnectionError("disconnected before the echo"))


async def open_one(url: str) -> Idle:
    _, client = await ws_connect(
        Idle, url, websocket_handshake_timeout=60, extra_headers={"Origin": origin_of(url)}
    )
    assert isinstance(client, Idle)
    await asyncio.wait_for(client.echoed, 60)
    return client


async def settled_rss(pid: int, longest: float = 6.0) -> int:
    """RSS once it stops moving (less than 0.2 % over 0.5 s), or after `longest` seconds."""
    deadline = time.monotonic() + longest
    await asyncio.sleep(0.5)
    last = rss_bytes(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = rss_bytes(pid)
        if abs(now - last) <= last * 0.002:
            return now
        last = now
    return last


async def main(args: argparse.Namespace) -> dict[str, Any]:
    first = await gather_limited([lambda: open_one(args.url)] * args.warm, limit=100)
    rss_warm = await settled_rss(args.server_pid)
    t0 = time.perf_counter()
    rest = await gather_limited(
        [lambda: open_one(args.url)] * (args.connections - args.warm), limit=100
    )
    open_seconds = time.perf_counter() - t0
    rss_all = await settled_rss(args.server_pid)
    added = len(rest)
    for c in first + rest:
        if c.transport is not None:
            c.transport.disconnect()
    return {
        "connections": len(first) + added,
        "warm": len(first),
        "rss_warm_bytes": rss_warm,
        "rss_bytes": rss_all,
        "kb_per_connection": (rss_all - rss_warm) / added / 1024,
        "open_seconds": open_seconds,
    }


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--warm", type=int, default=500)
    p.add_argument("--server-pid", type=int, required=True)
    return p.parse_args()


if __name__ == "__main__":
    raise_open_files_limit()
    emit(uvloop.run(main(parse())))
