"""Echo load: N connections, each keeping W messages in flight; RTT per message.

Each connection sends W messages, then one more for every echo it gets back, so W stays
constant. RTT is taken per message (echoes come back in order). Only the measurement window,
after a warm-up, is counted; the generator's own CPU per message is reported beside the
server's so a reader can see which side was the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import deque
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.harness import busy_cpu_seconds, cpu_seconds, raise_open_files_limit
from bench.load import (
    CDF_POINTS,
    SIO_CONNECT,
    SIO_EVENT,
    SIO_OPEN,
    SIO_PING,
    SIO_PONG,
    client_cpu_seconds,
    emit,
    gather_limited,
    origin_of,
    percentiles,
    sio_event,
    socketio_url,
)

TEXT_PAYLOAD = "0123456789abcdef0123456789abcdef"  # 32 bytes
JSON_PAYLOAD: dict[str, Any] = {"user": "bench", "text": "hello, world", "seq": 12345}


class Run:
    """Counters shared by all connections of this generator."""

    def __init__(self) -> None:
        self.recording = False
        self.stopping = False
        self.received = 0
        self.rtts: list[float] = []
        self.errors: list[str] = []
        self.first_reply: bytes | None = None


class EchoClient(WSListener):
    def __init__(self, run: Run, message: bytes, window: int, socketio: bool) -> None:
        self.run = run
        self.message = message
        self.window = window
        self.socketio = socketio
        self.sent: deque[float] = deque()
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if not self.socketio:
            self.ready.set_result(None)

    def start(self) -> None:
        for _ in range(self.window):
            self.send()

    def send(self) -> None:
        assert self.transport is not None
        self.sent.append(time.perf_counter())
        self.transport.send(WSMsgType.TEXT, self.message)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = time.perf_counter()
        kind = frame.msg_type
        if kind != WSMsgType.TEXT and kind != WSMsgType.BINARY:
            if kind == WSMsgType.CLOSE:
                self.fail(f"server closed: {frame.get_close_code()}")
                transport.disconnect()
            return
        if self.socketio:
            data = frame.get_payload_as_bytes()
            if not data.startswith(SIO_EVENT) or not self.ready.done():
                self.sio_control(transport, data)
                return
        if not self.sent:
            self.fail("reply without a request")
            return
        sent_at = self.sent.popleft()
        run = self.run
        if run.first_reply is None:
            run.first_reply = frame.get_payload_as_bytes()
        if run.recording:
            run.received += 1
            run.rtts.append(now - sent_at)
        if not run.stopping:
            self.send()

    def sio_control(self, transport: WSTransport, data: bytes) -> None:
        """Engine.IO handshake and pings, which arrive outside the echo stream."""
        if data == SIO_PING:
            transport.send(WSMsgType.TEXT, SIO_PONG)
        elif data.startswith(SIO_CONNECT):
            if not self.ready.done():
                self.ready.set_result(None)
        elif data.startswith(SIO_OPEN):
            transport.send(WSMsgType.TEXT, SIO_CONNECT)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.run.stopping:
            self.fail("disconnected during the run")

    def fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if len(self.run.errors) < 5:
            self.run.errors.append(why)


async def connect(url: str, run: Run, message: bytes, window: int, socketio: bool) -> EchoClient:
    _, client = await ws_connect(
        lambda: EchoClient(run, message, window, socketio),
        url,
        websocket_handshake_timeout=30,
        extra_headers={"Origin": origin_of(url)},
    )
    assert isinstance(client, EchoClient)
    await asyncio.wait_for(client.ready, 30)
    return client


def message_for(kind: str, socketio: bool) -> bytes:
    if kind == "text":
        body: Any = TEXT_PAYLOAD
    else:
        body = JSON_PAYLOAD
    if socketio:
        return sio_event("echo", body)
    if kind == "text":
        return TEXT_PAYLOAD.encode()
    return json.dumps(JSON_PAYLOAD, separators=(",", ":")).encode()


def check_echo(kind: str, socketio: bool, sent: bytes, got: bytes | None) -> str | None:
    """Why the first reply is not an echo of the request, or None if it is."""
    if got is None:
        return "no reply"
    if socketio:
        sent, got = sent[len(SIO_EVENT) :], got[len(SIO_EVENT) :]
    if kind == "text" and not socketio:
        return None if got == sent else f"reply {got!r} differs from {sent!r}"
    return None if json.loads(got) == json.loads(sent) else f"reply {got!r} is not {sent!r}"


async def main(args: argparse.Namespace) -> dict[str, Any]:
    socketio = args.protocol == "socketio"
    url = socketio_url(args.url) if socketio else args.url
    message = message_for(args.kind, socketio)
    run = Run()
    t0 = time.perf_counter()
    clients = await gather_limited(
        [
            lambda: connect(url, run, message, args.window, socketio)
            for _ in range(args.connections)
        ],
        limit=100,
    )
    connect_seconds = time.perf_counter() - t0
    for c in clients:
        c.start()
    await asyncio.sleep(args.warmup)

    run.recording = True
    wall0, cpu0 = time.perf_counter(), client_cpu_seconds()
    server0 = cpu_seconds(args.server_pid) if args.server_pid else 0.0
    busy0 = busy_cpu_seconds()
    await asyncio.sleep(args.duration)
    run.recording = False
    wall = time.perf_counter() - wall0
    cpu = client_cpu_seconds() - cpu0
    server_cpu = cpu_seconds(args.server_pid) - server0 if args.server_pid else float("nan")
    others = busy_cpu_seconds() - busy0 - cpu - server_cpu
    n = run.received

    run.stopping = True
    for c in clients:
        if c.transport is not None:
            c.transport.disconnect()
    bad = check_echo(args.kind, socketio, message, run.first_reply)
    if bad:
        run.errors.append(bad)
    p50, p99, *_ = percentiles(run.rtts, [50, 99])
    return {
        "connections": args.connections,
        "window": args.window,
        "kind": args.kind,
        "messages": n,
        "seconds": wall,
        "rate": n / wall,
        "p50_us": p50 * 1e6,
        "p99_us": p99 * 1e6,
        "cdf_us": [v * 1e6 for v in percentiles(run.rtts, CDF_POINTS)],
        "client_cpu_us_per_msg": cpu / n * 1e6 if n else float("nan"),
        "client_cpu_util": cpu / wall,
        "server_cpu_us_per_msg": server_cpu / n * 1e6 if n else float("nan"),
        "server_cpu_util": server_cpu / wall,
        "other_cpu_util": max(0.0, others / wall),
        "connect_seconds": connect_seconds,
        "errors": run.errors,
    }


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/path")
    p.add_argument("--protocol", choices=["raw", "socketio"], default="raw")
    p.add_argument("--kind", choices=["text", "json"], default="text")
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--window", type=int, default=1)
    p.add_argument("--warmup", type=float, default=0.3)
    p.add_argument("--duration", type=float, default=1.5)
    p.add_argument("--server-pid", type=int, default=0, help="read its CPU time from /proc")
    return p.parse_args()


if __name__ == "__main__":
    raise_open_files_limit()
    emit(uvloop.run(main(parse())))
