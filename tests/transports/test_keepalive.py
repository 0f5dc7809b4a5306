"""Per-connection keepalive on the servers that expose ping and pong (picows, websockets, aiohttp).

The engine pings every ``ping_period`` with the route's own options; a client
silent for ``pong_wait`` is dropped, a write stalled for ``write_wait`` too;
a healthy idle client stays. The clients are bare sockets (tests/rawws.py)
that answer pings only when told to and read only when asked.

The bounds checked are the options' own (plus a generous slack for a loaded
machine), not speed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

import wschannels
from tests.rawws import RawClient
from tests.servers import FRAME_SERVERS, SERVERS, Serving
from wschannels import Done, Errors, Options, Receiver, Sender, select

SLACK = 3.0  # seconds: the machine is shared


@pytest.fixture(params=FRAME_SERVERS)
def frame_serving(request: pytest.FixtureRequest) -> Serving:
    return SERVERS[request.param]


async def test_a_client_that_never_answers_pings_is_dropped_after_pong_wait(
    frame_serving: Serving,
) -> None:
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[tuple[float, list[Exception]]] = loop.create_future()

    @wschannels.messages(Options(ping_period=0.2, pong_wait=0.5, skip_logging=True))
    async def wait_for_done(done: Done, errors: Errors) -> None:
        await done.recv()
        ended.set_result((loop.time(), [error async for error in errors]))

    async with frame_serving(wait_for_done) as server:
        client = await RawClient.connect(server.port)
        assert client.accepted
        connected = loop.time()
        assert await client.close_code() == 1006  # dropped: no close frame
        at, found = await asyncio.wait_for(ended, 10)
        await client.aclose()
    assert client.pings >= 2  # pinged every ping_period, never answered
    assert at - connected <= 0.2 + 0.5 + SLACK
    assert any(isinstance(error, wschannels.KeepaliveTimeout) for error in found)


async def test_each_route_keeps_its_own_keepalive(frame_serving: Serving) -> None:
    loop = asyncio.get_running_loop()
    ended: dict[str, float] = {}

    def route(name: str, options: Options) -> Any:
        @wschannels.messages(options)
        async def wait_for_done(done: Done) -> None:
            await done.recv()
            ended[name] = loop.time()

        return wait_for_done

    routes = {
        "/quick": route("quick", Options(ping_period=0.2, pong_wait=0.5, skip_logging=True)),
        "/patient": route("patient", Options(ping_period=5, pong_wait=30, skip_logging=True)),
    }
    async with frame_serving(routes=routes) as server:
        patient = await RawClient.connect(server.port, "/patient")
        quick = await RawClient.connect(server.port, "/quick")
        assert await quick.close_code() == 1006
        await asyncio.sleep(0.5)  # another pong_wait of the quick route
        assert "patient" not in ended
        patient.send_text("still here")  # the patient client is open
        await patient.aclose()
        await quick.aclose()
        async with asyncio.timeout(10):
            while "patient" not in ended:
                await asyncio.sleep(0.01)


async def test_a_healthy_idle_client_stays_across_many_ping_periods(
    frame_serving: Serving,
) -> None:
    @wschannels.messages(Options(ping_period=0.1, pong_wait=0.3))
    async def echo(receiver: Receiver[str], sender: Sender[str], done: Done) -> None:
        while True:
            chosen, value, _ = await select(receiver, done)
            if chosen is done:
                return
            await sender.send(value)

    async with frame_serving(echo) as server:
        client = await RawClient.connect(server.port)
        client.answer_pings = True
        reading = asyncio.ensure_future(client.next_frame())  # reads, answering pings
        await asyncio.sleep(1.5)  # 15 ping periods, 5 pong_waits
        assert not reading.done()  # no close, no EOF
        client.send_text("still here")
        frame = await asyncio.wait_for(reading, 10)
        assert frame is not None and frame.data == b"still here"
        await client.aclose()
    assert client.pings >= 5


async def test_a_client_that_stops_reading_is_dropped_after_write_wait(
    frame_serving: Serving,
) -> None:
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[tuple[float, float, list[Exception], Any]] = loop.create_future()
    buffer = 4

    @wschannels.bytes_messages(
        Options(write_wait=0.5, send_channel_buffer=buffer, ping_period=None, skip_logging=True)
    )
    async def flood(sender: Sender[bytes], done: Done, errors: Errors) -> None:
        chunk = b"x" * 65536
        last_sent = loop.time()
        with contextlib.suppress(wschannels.ChannelClosed):
            while True:
                await sender.send(chunk)
                last_sent = loop.time()
        await done.recv()
        ended.set_result((last_sent, loop.time(), [e async for e in errors], done.statistics()))

    async with frame_serving(flood) as server:
        client = await RawClient.connect(server.port)  # reads nothing from now on
        last_sent, at, found, statistics = await asyncio.wait_for(ended, 20)
        await client.aclose()
    # The sends stopped when the socket and the queue were full; write_wait later, the end.
    assert at - last_sent <= 0.5 + SLACK
    assert any(isinstance(error, wschannels.WriteTimeout) for error in found)
    # Memory stayed bounded: no more than the sender's buffer was left queued.
    assert statistics.messages_undelivered <= buffer + 1
