"""Connection churn: C workers each open a connection, exchange one message, close, repeat.

Counts complete cycles (handshake, echo, close handshake, TCP gone) per second.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.harness import busy_cpu_seconds, cpu_seconds, raise_open_files_limit
from bench.load import (
    SIO_CONNECT,
    SIO_EVENT,
    SIO_OPEN,
    client_cpu_seconds,
    emit,
    origin_of,
    sio_event,
    socketio_url,
)

MESSAGE = "0123456789abcdef0123456789abcdef"


class Once(WSListener):
    def __init__(self, socketio: bool) -> None:
        self.socketio = socketio
        self.echoed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        if not self.socketio:
            transport.send(WSMsgType.TEXT, MESSAGE.encode())

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        if self.socketio:
            data = frame.get_payload_as_bytes()
            if data.startswith(SIO_OPEN):
                transport.send(WSMsgType.TEXT, SIO_CONNECT)
                return
            if data.startswith(SIO_CONNECT):
                transport.send(WSMsgType.TEXT, sio_event("echo", MESSAGE))
                return
            if not data.startswith(SIO_EVENT):
                return
        if not self.echoed.done():
            self.echoed.set_result(None)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.echoed.done():
            self.echoed.set_exception(ConnectionError("disconnected before the echo"))


class Counts:
    def __init__(self) -> None:
        self.recording = False
        self.stopping = False
        self.cycles = 0
        self.errors: list[str] = []


async def cycle(url: str, socketio: bool) -> None:
    transport, client = await ws_connect(
        lambda: Once(socketio), url, extra_headers={"Origin": origin_of(url)}
    )
    assert isinstance(client, Once)
    await client.echoed
    transport.send_close()
    await transport.wait_disconnected()


async def worker(url: str, socketio: bool, counts: Counts) -> None:
    while not counts.stopping:
        try:
            await asyncio.wait_for(cycle(url, socketio), 10)
        except Exception as e:
            if len(counts.errors) < 5:
                counts.errors.append(repr(e))
            await asyncio.sleep(0.01)
            continue
        if counts.recording:
            counts.cycles += 1


async def main(args: argparse.Namespace) -> dict[str, Any]:
    socketio = args.protocol == "socketio"
    url = socketio_url(args.url) if socketio else args.url
    counts = Counts()
    tasks = [asyncio.create_task(worker(url, socketio, counts)) for _ in range(args.concurrency)]
    await asyncio.sleep(args.warmup)
    counts.recording = True
    wall0, cpu0, server0 = time.perf_counter(), client_cpu_seconds(), cpu_seconds(args.server_pid)
    busy0 = busy_cpu_seconds()
    await asyncio.sleep(args.duration)
    counts.recording = False
    wall = time.perf_counter() - wall0
    cpu = client_cpu_seconds() - cpu0
    server_cpu = cpu_seconds(args.server_pid) - server0
    others = busy_cpu_seconds() - busy0 - cpu - server_cpu
    counts.stopping = True
    await asyncio.wait(tasks, timeout=10)
    n = counts.cycles
    return {
        "cycles": n,
        "seconds": wall,
        "rate": n / wall,
        "client_cpu_us_per_cycle": cpu / n * 1e6 if n else float("nan"),
        "client_cpu_util": cpu / wall,
        "server_cpu_us_per_cycle": server_cpu / n * 1e6 if n else float("nan"),
        "server_cpu_util": server_cpu / wall,
        "other_cpu_util": max(0.0, others / wall),
        "errors": counts.errors,
    }


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--protocol", choices=["raw", "socketio"], default="raw")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--server-pid", type=int, required=True)
    return p.parse_args()


if __name__ == "__main__":
    raise_open_files_limit()
    emit(uvloop.run(main(parse())))
