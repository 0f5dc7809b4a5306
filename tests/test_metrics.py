"""``wschannels.stats()`` and the Prometheus ``/metrics`` route count what really happened."""

from __future__ import annotations

import asyncio

import httpx
import msgspec
from starlette.applications import Starlette

import wschannels
from wschannels import CloseCode, Disconnect, Receiver, Sender
from wschannels.testing import connect


class Note(msgspec.Struct):
    text: str


@wschannels.json(Note)
async def echo_then_close(
    receiver: Receiver[Note], sender: Sender[Note], disconnect: Disconnect
) -> None:
    async for note in receiver:
        if note.text == "bye":
            await disconnect.send(CloseCode.POLICY_VIOLATION)
            return
        await sender.send(note)


async def test_stats_count_connections_messages_bytes_errors_and_close_codes() -> None:
    before = wschannels.stats()
    json_before = before.bindings.get("json", wschannels.metrics.BindingStats())
    async with connect(echo_then_close) as client:
        await client.send({"text": "abc"})
        await client.receive()
        during = wschannels.stats()
        assert during.connections_open == before.connections_open + 1
        await client.send("not json")
        await client.send({"text": "bye"})
        assert await client.wait_closed() == CloseCode.POLICY_VIOLATION
    after = wschannels.stats()
    counted = after.bindings["json"]
    assert after.connections_open == before.connections_open
    assert after.connections_total == before.connections_total + 1
    assert counted.messages_in - json_before.messages_in == 3
    assert counted.messages_out - json_before.messages_out == 1
    assert counted.bytes_out - json_before.bytes_out == len('{"text":"abc"}')
    assert counted.invalid_messages - json_before.invalid_messages == 1
    assert after.close_codes[1008] == before.close_codes.get(1008, 0) + 1


async def test_stats_sum_the_hubs_of_the_process() -> None:
    hub = wschannels.Hub()

    @wschannels.messages()
    async def member(receiver: Receiver[str], sender: Sender[str]) -> None:
        await hub.join("a", sender)
        await hub.join("b", sender)
        async for _ in receiver:
            pass

    async with hub, connect(member) as client:
        await client.send("joined?")
        for _ in range(100):
            if hub.statistics().members == 2:
                break
            await asyncio.sleep(0.01)
        counted = wschannels.stats().hub
        assert counted.rooms >= 2 and counted.members >= 2


async def test_the_metrics_route_serves_prometheus_text() -> None:
    app = Starlette()
    app.add_route("/metrics", wschannels.metrics_endpoint)
    async with connect(echo_then_close) as client:
        await client.send({"text": "x"})
        await client.receive()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    received = [
        line
        for line in lines
        if line.startswith('wschannels_messages_received_total{binding="json"}')
    ]
    assert received and float(received[0].split()[-1]) >= 1
    assert any(line.startswith("wschannels_connections_open ") for line in lines)
