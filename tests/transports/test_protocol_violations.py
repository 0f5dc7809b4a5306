"""A client that breaks RFC 6455 is closed with 1002 (or refused), and nobody else notices.

picows leaves these checks to the application, so its adapter does them; the
other servers do them in their own protocol code. Each case runs on every
server, from a bare socket (tests/rawws.py), beside a well-behaved client
on the same server whose echo must go on.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import pytest
from websockets.asyncio.client import connect
from websockets.frames import Opcode

import wschannels
from tests.rawws import RawClient
from tests.servers import Serving, name_of
from wschannels import CloseCode, Receiver, Sender

WAIT = 10.0


@wschannels.raw()
async def echo(receiver: Receiver[str | bytes], sender: Sender[str | bytes]) -> None:
    async for message in receiver:
        await sender.send(message)


def rsv_bits(client: RawClient) -> None:
    client.send_frame(Opcode.TEXT, b"hello", rsv=0b100)


def rsv2_on_binary(client: RawClient) -> None:
    client.send_frame(Opcode.BINARY, b"\x00", rsv=0b010)


def rsv3_on_ping(client: RawClient) -> None:
    client.send_frame(Opcode.PING, b"", rsv=0b001)


def data_frame_inside_a_fragmented_message(client: RawClient) -> None:
    client.send_frame(Opcode.TEXT, b"frag", fin=False)
    client.send_frame(Opcode.TEXT, b"new message", fin=True)


def continuation_without_a_message(client: RawClient) -> None:
    client.send_frame(Opcode.CONT, b"orphan", fin=True)


def reserved_opcode(client: RawClient) -> None:
    client.send_frame(3, b"")


def close_code(code: int) -> object:
    def send(client: RawClient) -> None:
        client.send_frame(Opcode.CLOSE, struct.pack("!H", code))

    send.__name__ = f"close_code_{code}"
    return send


def close_with_one_byte(client: RawClient) -> None:
    client.send_frame(Opcode.CLOSE, b"\x03")


VIOLATIONS = [
    rsv_bits,
    rsv2_on_binary,
    rsv3_on_ping,
    data_frame_inside_a_fragmented_message,
    continuation_without_a_message,
    reserved_opcode,
    close_code(0),
    close_code(999),
    close_code(1004),
    close_code(1005),
    close_code(1006),
    close_code(1015),
    close_code(2000),
    close_with_one_byte,
]


@pytest.mark.parametrize("violation", VIOLATIONS, ids=lambda violation: violation.__name__)
async def test_a_protocol_violation_closes_with_1002_and_other_clients_go_on(
    serving: Serving, violation: object
) -> None:
    async with (
        serving(echo) as server,
        connect(server.ws + "/", origin=server.origin, compression=None) as bystander,
    ):
        client = await RawClient.connect(server.port)
        assert client.accepted
        client.send_text("fine")
        frame = await asyncio.wait_for(client.next_frame(), WAIT)
        assert frame is not None and frame.data == b"fine"
        violation(client)  # type: ignore[operator]
        assert await client.close_code() == CloseCode.PROTOCOL_ERROR
        await client.aclose()
        await bystander.send("still here")
        assert await asyncio.wait_for(bystander.recv(), WAIT) == "still here"


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1011, 3000, 4999])
async def test_a_valid_close_code_from_the_client_is_echoed(serving: Serving, code: int) -> None:
    async with serving(echo) as server:
        client = await RawClient.connect(server.port)
        client.send_close(code)
        echoed = await client.close_code()
        await client.aclose()
    assert echoed == code


async def test_a_handshake_for_version_8_is_refused(serving: Serving) -> None:
    async with serving(echo) as server:
        client = await RawClient.connect(server.port, headers={"Sec-WebSocket-Version": "8"})
        await client.aclose()
    # 426 naming version 13 where the adapter checks it; websockets' own check answers 400.
    if name_of(serving) in ("picows", "aiohttp"):
        assert client.response.status_code == 426
        assert client.response.headers["Sec-WebSocket-Version"] == "13"
    else:
        assert client.response.status_code == 400


async def test_a_handshake_without_a_key_is_refused(serving: Serving) -> None:
    async with serving(echo) as server:
        key = base64.b64encode(os.urandom(4)).decode()  # 4 bytes, not 16
        client = await RawClient.connect(server.port, headers={"Sec-WebSocket-Key": key})
        await client.aclose()
    assert client.response.status_code in (400, 426)
