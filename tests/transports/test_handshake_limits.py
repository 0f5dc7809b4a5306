"""Handshake limits on the serve_* servers: a trickled handshake is cut, a cap is enforced."""

from __future__ import annotations

import asyncio
import time

import pytest
from websockets.asyncio.client import connect

import wschannels
from wschannels import Receiver, Sender

SLOW_REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@wschannels.messages()
async def echo(receiver: Receiver[str], sender: Sender[str]) -> None:
    async for message in receiver:
        await sender.send(message)


async def serve(
    kind: str, **limits: object
) -> wschannels.PicowsServer | wschannels.WebsocketsServer:
    if kind == "picows":
        return await wschannels.serve_picows({"/": echo}, "127.0.0.1", 0, **limits)  # type: ignore[arg-type]
    return await wschannels.serve_websockets({"/": echo}, "127.0.0.1", 0, **limits)  # type: ignore[arg-type]


async def echoes(port: int) -> bool:
    async with connect(f"ws://127.0.0.1:{port}/", compression=None, open_timeout=5) as ws:
        await ws.send("still here")
        return await asyncio.wait_for(ws.recv(), 5) == "still here"


@pytest.mark.parametrize("kind", ["picows", "websockets"])
async def test_a_handshake_trickled_a_byte_at_a_time_is_cut_at_handshake_timeout(kind: str) -> None:
    async with await serve(kind, handshake_timeout=0.5) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        started = time.monotonic()
        cut = None
        try:
            for byte in SLOW_REQUEST:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.1)
                if reader.at_eof() or writer.is_closing():
                    break
            cut = await asyncio.wait_for(reader.read(), 5)
        except ConnectionError:
            cut = b""
        finally:
            writer.close()
        elapsed = time.monotonic() - started
        assert b"101" not in (cut or b"")  # never upgraded
        assert elapsed < 5  # cut near handshake_timeout, not after the whole trickle (~13 s)
        assert await echoes(server.port)  # and the server goes on serving others


async def test_handshakes_over_max_handshakes_are_dropped_and_the_server_recovers() -> None:
    async with await serve("websockets", max_handshakes=3, handshake_timeout=30) as server:
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(SLOW_REQUEST)
        try:
            answer = await asyncio.wait_for(reader.read(), 5)
        except ConnectionError:
            answer = b""
        writer.close()
        assert b"101" not in answer  # the fourth was dropped
        for _, idle_writer in idle:
            idle_writer.close()
        await asyncio.sleep(0.2)
        assert await echoes(server.port)  # room again once the idle ones went
