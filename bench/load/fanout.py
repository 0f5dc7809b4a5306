"""Fan-out load: M members join a room, one publisher publishes P times; per publish, the time
from the publisher's send until the last member has the message.

Members connect to the `--member-urls` round-robin (two URLs = two server processes) and
count as joined when the server tells them so ("joined" text, or the Socket.IO event), so
no publish races a join. Each published text carries its number between '#' marks; the
next publish goes out when every member has the previous one (or it timed out).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.harness import busy_cpu_seconds, cpu_seconds, raise_open_files_limit, rss_bytes
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

JOINED = b"joined"
SIO_JOINED = sio_event("joined")


class Run:
    def __init__(self, publishes: int) -> None:
        self.members = 0
        self.counts = [0] * publishes
        self.last = [0.0] * publishes
        self.complete: list[asyncio.Future[None]] = [
            asyncio.get_running_loop().create_future() for _ in range(publishes)
        ]
        self.disconnected = 0
        self.stopping = False

    def arrived(self, number: int, now: float) -> None:
        self.counts[number] += 1
        self.last[number] = now
        if self.counts[number] >= self.members and not self.complete[number].done():
            self.complete[number].set_result(None)


class Client(WSListener):
    """A member (counts arrivals) or the publisher (only needs the handshake)."""

    def __init__(self, run: Run, socketio: bool, member: bool) -> None:
        self.run = run
        self.socketio = socketio
        self.member = member
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if not self.socketio and not self.member:
            self.ready.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = time.perf_counter()
        kind = frame.msg_type
        if kind == WSMsgType.CLOSE:
            transport.disconnect()
            return
        if kind != WSMsgType.TEXT:
            return
        data = frame.get_payload_as_bytes()
        start = data.find(b"#")
        if start >= 0:
            self.run.arrived(int(data[start + 1 : data.index(b"#", start + 1)]), now)
        elif self.socketio:
            self.sio_control(transport, data)
        elif data == JOINED and not self.ready.done():
            self.ready.set_result(None)

    def sio_control(self, transport: WSTransport, data: bytes) -> None:
        if data == SIO_PING:
            transport.send(WSMsgType.TEXT, SIO_PONG)
        elif data.startswith(SIO_OPEN):
            transport.send(WSMsgType.TEXT, SIO_CONNECT)
        elif data.startswith(SIO_CONNECT) and not data.startswith(SIO_EVENT):
            if self.member:
                transport.send(WSMsgType.TEXT, sio_event("join"))
            elif not self.ready.done():
                self.ready.set_result(None)
        elif data == SIO_JOINED and not self.ready.done():
            self.ready.set_result(None)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.run.stopping:
            self.run.disconnected += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("disconnected before joining"))


async def connect(url: str, run: Run, socketio: bool, member: bool, limit: float) -> Client:
    async def attempt() -> Client:
        _, client = await ws_connect(
            lambda: Client(run, socketio, member),
            url,
            websocket_handshake_timeout=limit,
            extra_headers={"Origin": origin_of(url)},
        )
        assert isinstance(client, Client)
        await client.ready
        return client

    return await asyncio.wait_for(attempt(), limit)


def server_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    socketio = args.protocol == "socketio"
    wrap = socketio_url if socketio else (lambda u: u)
    member_urls = [wrap(u) for u in args.member_urls.split(",")]
    publish_url = wrap(args.publish_url)
    pids = [int(p) for p in args.server_pids.split(",") if p]
    run = Run(args.publishes)

    t0 = time.perf_counter()
    deadline = t0 + args.connect_timeout  # for all joins together: a stuck server ends them

    async def join(url: str) -> Client | BaseException:
        left = deadline - time.perf_counter()
        if left <= 0:
            return TimeoutError(f"not joined within {args.connect_timeout:.0f} s")
        return await _settled(connect(url, run, socketio, True, left))

    def joiner(url: str) -> Callable[[], Awaitable[Client | BaseException]]:
        return lambda: join(url)

    outcomes = await gather_limited(
        [joiner(member_urls[i % len(member_urls)]) for i in range(args.members)],
        limit=args.connect_concurrency,
    )
    members = [c for c in outcomes if isinstance(c, Client)]
    failures = [repr(e) for e in outcomes if not isinstance(e, Client)]
    run.members = len(members)
    join_seconds = time.perf_counter() - t0
    result: dict[str, Any] = {
        "members_wanted": args.members,
        "members": len(members),
        "join_seconds": join_seconds,
        "join_errors": sorted(set(failures))[:5],
        "server_rss_bytes": sum(rss_bytes(p) for p in pids),
    }
    if not members:
        result.update(latencies_ms=[], published=0, delivered=0, lost=0)
        return result

    publisher = await connect(publish_url, run, socketio, False, args.connect_timeout)
    assert publisher.transport is not None
    await asyncio.sleep(0.5)

    latencies: list[float] = []
    lost = 0
    timeouts_in_a_row = 0
    published = 0
    wall0, cpu0, busy0 = time.perf_counter(), server_cpu(pids), busy_cpu_seconds()
    own0 = client_cpu_seconds()
    for n in range(args.publishes):
        if n >= args.min_publishes and time.perf_counter() - wall0 > args.budget:
            break
        text = f"#{n}#".ljust(32, ".")
        frame = sio_event("publish", text) if socketio else text.encode()
        sent_at = time.perf_counter()
        publisher.transport.send(WSMsgType.TEXT, frame)
        published += 1
        try:
            await asyncio.wait_for(asyncio.shield(run.complete[n]), args.publish_timeout)
        except TimeoutError:
            lost += run.members - run.counts[n]
            timeouts_in_a_row += 1
            if timeouts_in_a_row >= 2:
                break
        else:
            timeouts_in_a_row = 0
            latencies.append((run.last[n] - sent_at) * 1e3)
        await asyncio.sleep(args.gap)
    cpu = server_cpu(pids) - cpu0
    wall = time.perf_counter() - wall0
    others = busy_cpu_seconds() - busy0 - cpu - (client_cpu_seconds() - own0)
    run.stopping = True
    p50, p99 = percentiles(latencies, [50, 99])
    result.update(
        published=published,
        delivered=len(latencies),
        lost=lost,
        disconnected=run.disconnected,
        latencies_ms=latencies,
        p50_ms=p50,
        p99_ms=p99,
        cdf_ms=percentiles(latencies, CDF_POINTS),
        server_cpu_ms_per_publish=cpu / published * 1e3,
        other_cpu_util=max(0.0, others / wall),
        server_rss_bytes=max(result["server_rss_bytes"], sum(rss_bytes(p) for p in pids)),
    )
    for c in [publisher, *members]:
        if c.transport is not None:
            c.transport.disconnect()
    return result


async def _settled(aw: Awaitable[Client]) -> Client | BaseException:
    """`aw`'s result, or the exception it raised (so one failed join doesn't end the run)."""
    try:
        return await aw
    except Exception as e:
        return e


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--member-urls", required=True, help="comma-separated ws:// URLs")
    p.add_argument("--publish-url", required=True)
    p.add_argument("--protocol", choices=["raw", "socketio"], default="raw")
    p.add_argument("--members", type=int, default=1000)
    p.add_argument("--publishes", type=int, default=30)
    p.add_argument("--min-publishes", type=int, default=3)
    p.add_argument("--budget", type=float, default=20.0, help="stop publishing after this")
    p.add_argument("--publish-timeout", type=float, default=10.0)
    p.add_argument("--gap", type=float, default=0.1, help="pause after each delivery")
    p.add_argument("--connect-timeout", type=float, default=60.0, help="for all members")
    p.add_argument("--connect-concurrency", type=int, default=100)
    p.add_argument("--server-pids", default="")
    return p.parse_args()


if __name__ == "__main__":
    raise_open_files_limit()
    emit(uvloop.run(main(parse())))
