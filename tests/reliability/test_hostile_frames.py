"""Malformed frames and handshakes from a raw socket: each fails that connection alone.

RFC 6455 says what a server must do with each (section 5 and 7.4): fail the connection with
1002 for a protocol error, 1007 for text that is not UTF-8, 1009 for a message over the limit,
refuse a handshake it cannot accept. In every case a well-behaved client connected before
goes on being served, and a new one is accepted.
"""

from __future__ import annotations

import asyncio

import pytest
from websockets.frames import Opcode

from bench.servers.registry import ServerKind
from tests.reliability.conftest import assert_serves_new_client, bystander
from tests.reliability.rawclient import (
    RawClient,
    close_frame,
    frame,
    http_exchange,
    raw_frame,
    status_of,
)

OP_TEXT, OP_BINARY, OP_CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
OP_CLOSE, OP_PING = Opcode.CLOSE, Opcode.PING
PROTOCOL_ERROR, INVALID_DATA, TOO_BIG = 1002, 1007, 1009

# (test id, bytes sent after the handshake, the close code the server must send)
VIOLATIONS: list[tuple[str, bytes, int]] = [
    ("unmasked data frame", frame(OP_TEXT, b"hello", mask=False), PROTOCOL_ERROR),
    ("rsv1 without an extension", raw_frame(OP_TEXT, b"hello", rsv=0b100), PROTOCOL_ERROR),
    ("rsv2", raw_frame(OP_BINARY, b"hello", rsv=0b010), PROTOCOL_ERROR),
    ("rsv3", raw_frame(OP_TEXT, b"hello", rsv=0b001), PROTOCOL_ERROR),
    ("reserved opcode 3", raw_frame(3, b"hello"), PROTOCOL_ERROR),
    ("reserved control opcode 11", raw_frame(11, b""), PROTOCOL_ERROR),
    ("ping of 126 bytes", raw_frame(OP_PING, b"p" * 126), PROTOCOL_ERROR),
    ("fragmented ping", raw_frame(OP_PING, b"p", fin=False), PROTOCOL_ERROR),
    ("continuation with nothing to continue", frame(OP_CONT, b"orphan"), PROTOCOL_ERROR),
    (
        "new text frame inside a fragmented message",
        frame(OP_TEXT, b"one", fin=False) + frame(OP_TEXT, b"two"),
        PROTOCOL_ERROR,
    ),
    (
        "new binary frame inside a fragmented message",
        frame(OP_BINARY, b"one", fin=False) + frame(OP_BINARY, b"two", fin=False),
        PROTOCOL_ERROR,
    ),
    ("text that is not UTF-8", frame(OP_TEXT, b"caf\xc3\x28"), INVALID_DATA),
    ("a surrogate encoded in UTF-8", frame(OP_TEXT, b"\xed\xa0\x80"), INVALID_DATA),
    (
        "invalid UTF-8 split across fragments",
        frame(OP_TEXT, b"ok \xce", fin=False) + frame(OP_CONT, b"\xff"),
        INVALID_DATA,
    ),
    # The length field claims more than max_message_size (65,536): the server must not wait
    # for, or buffer, the rest.
    ("length field of 1 MiB", raw_frame(OP_BINARY, b"x" * 100, length=1 << 20), TOO_BIG),
    ("length field of 2**62", raw_frame(OP_BINARY, b"x" * 100, length=1 << 62), TOO_BIG),
    (
        "fragments adding up over max_message_size",
        frame(OP_BINARY, b"x" * 40000, fin=False) + frame(OP_CONT, b"y" * 40000),
        TOO_BIG,
    ),
    ("close with a 1-byte payload", raw_frame(OP_CLOSE, b"\x03"), PROTOCOL_ERROR),
    ("close reason that is not UTF-8", close_frame(1000, b"\xff\xfe"), INVALID_DATA),
    ("close of 126 bytes", raw_frame(OP_CLOSE, b"\x03\xe8" + b"r" * 124), PROTOCOL_ERROR),
] + [
    (f"close code {code}", close_frame(code), PROTOCOL_ERROR)
    for code in (0, 999, 1004, 1005, 1006, 1015, 5000)
]


# What a server checks before any adapter sees a frame, and does not: (server, violation) →
# why. The test asserts the gap is still what it is, so it fails the day it is closed.
KNOWN_GAPS = {
    ("aiohttp", "unmasked data frame"): (
        "aiohttp's frame reader does not check that a client's frames are masked, and hands "
        "no mask bit to the application (its own raw echo echoes the frame too)"
    ),
}


@pytest.mark.parametrize(("name", "sent", "expected"), VIOLATIONS,
                         ids=[v[0] for v in VIOLATIONS])  # fmt: skip
async def test_a_protocol_violation_fails_that_connection_with_the_rfc_close_code(
    server_kind: ServerKind, port: int, name: str, sent: bytes, expected: int
) -> None:
    async with bystander(port):
        hostile = await RawClient.open(port, "/raw")
        hostile.send(sent)
        await hostile.drain()
        if (server_kind.name, name) in KNOWN_GAPS:
            received = await hostile.read_until_closed(1)
            assert received.data, f"known gap closed? {KNOWN_GAPS[server_kind.name, name]}"
            hostile.close()
            return
        received = await hostile.read_until_closed()
        assert received.invalid is None, f"the server sent an invalid frame: {received.invalid}"
        assert received.data == []  # nothing of it was echoed
        assert not received.still_open, "the server did not close the connection"
        assert received.close_code == expected
    await assert_serves_new_client(port)


async def test_a_length_field_larger_than_any_message_closes_at_once_without_waiting(
    port: int,
) -> None:
    """A 2**63 - 1 length (the largest the header holds) is refused from the header alone."""
    async with bystander(port):
        hostile = await RawClient.open(port, "/raw")
        hostile.send(raw_frame(OP_BINARY, b"", length=(1 << 63) - 1))
        received = await hostile.read_until_closed()
        assert received.close_code in (PROTOCOL_ERROR, TOO_BIG)
    await assert_serves_new_client(port)


def upgrade_request(port: int, *, version: str = "13", extra: bytes = b"") -> bytes:
    return (
        b"GET /raw HTTP/1.1\r\n"
        b"Host: 127.0.0.1:%d\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: %s\r\n" % (port, version.encode())
    ) + extra + b"\r\n"


async def test_the_raw_handshake_of_these_tests_is_accepted(port: int) -> None:
    """The control case: the request the refusals below alter gets 101."""
    assert status_of(await http_exchange(port, upgrade_request(port))) == 101


HANDSHAKES: list[tuple[str, bytes]] = [
    ("version 8", b"V8"),
    ("version 14", b"V14"),
    ("two Sec-WebSocket-Key headers", b"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"),
    ("two Sec-WebSocket-Version headers", b"Sec-WebSocket-Version: 8\r\n"),
    ("a key that is not 16 bytes of base64", b"KEY"),
]


def hostile_handshake(port: int, case: bytes) -> bytes:
    if case.startswith(b"V"):
        return upgrade_request(port, version=case[1:].decode())
    if case == b"KEY":
        return upgrade_request(port).replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"c2hvcnQ=")
    return upgrade_request(port, extra=case)


@pytest.mark.parametrize("case", [h[1] for h in HANDSHAKES], ids=[h[0] for h in HANDSHAKES])
async def test_a_handshake_the_server_cannot_accept_is_refused_with_a_4xx(
    port: int, case: bytes
) -> None:
    async with bystander(port):
        status = status_of(await http_exchange(port, hostile_handshake(port, case)))
        assert status is not None and 400 <= status < 500, status
    await assert_serves_new_client(port)


GARBAGE: list[tuple[str, bytes]] = [
    ("a TLS ClientHello", bytes.fromhex("16030100a5010000a10303") + b"\x00" * 64),
    ("binary noise", bytes(range(256)) * 4),
    ("a WebSocket frame instead of a request", frame(OP_TEXT, b"hello")),
    ("a request line with no end", b"GET /" + b"a" * 70000),
    ("an HTTP/0.9 request", b"GET /raw\r\n\r\n"),
]


@pytest.mark.parametrize("garbage", [g[1] for g in GARBAGE], ids=[g[0] for g in GARBAGE])
async def test_garbage_before_the_handshake_gets_no_101(port: int, garbage: bytes) -> None:
    async with bystander(port):
        answer = await http_exchange(port, garbage + upgrade_request(port), seconds=3)
        assert status_of(answer) != 101
    await assert_serves_new_client(port)


async def test_a_hundred_hostile_connections_at_once_leave_the_bystander_served(
    server_kind: ServerKind, port: int
) -> None:
    violations = [v for v in VIOLATIONS if (server_kind.name, v[0]) not in KNOWN_GAPS]
    async with bystander(port):

        async def one(index: int) -> int | None:
            hostile = await RawClient.open(port, "/raw")
            hostile.send(violations[index % len(violations)][1])
            return (await hostile.read_until_closed(10)).close_code

        codes = await asyncio.gather(*(one(i) for i in range(100)))
        assert all(code is not None for code in codes)
    await assert_serves_new_client(port)
