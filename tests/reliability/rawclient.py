"""A WebSocket client on a bare socket, to send what a well-behaved client never would.

The handshake is the `websockets` library's own (`ClientProtocol`); frames are built with its
`Frame(...).serialize(...)` wherever that can express the case, and with `raw_frame()` only
where a frame is malformed in a way `Frame` refuses to serialize (reserved bits, long or
fragmented control frames, unknown opcodes, lying length fields). What the server sends back is
parsed by `websockets.frames.Frame.parse`, with the close code read leniently so that a server
echoing an invalid code is seen doing so.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field

from websockets.client import ClientProtocol
from websockets.exceptions import ProtocolError
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.streams import StreamReader
from websockets.uri import parse_uri


def raw_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, mask: bool = True,
    length: int | None = None,
) -> bytes:  # fmt: skip
    """Frame bytes exactly as given: any opcode, reserved bits ``rsv`` (0-7), any length field."""
    head1 = (0x80 if fin else 0) | (rsv & 7) << 4 | opcode & 0x0F
    size = len(payload) if length is None else length
    mask_bit = 0x80 if mask else 0
    if size < 126:
        header = struct.pack("!BB", head1, mask_bit | size)
    elif size < 65536:
        header = struct.pack("!BBH", head1, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", head1, mask_bit | 127, size)
    if not mask:
        return header + payload
    key = b"\x37\xfa\x21\x3d"
    masked = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
    return header + key + masked


def frame(opcode: Opcode, payload: bytes = b"", *, fin: bool = True, mask: bool = True) -> bytes:
    """A frame the `websockets` library itself serializes (masked, as a client must)."""
    return Frame(opcode, payload, fin=fin).serialize(mask=mask)


def close_frame(code: int, reason: bytes = b"") -> bytes:
    """A close frame carrying ``code`` as is, valid or not."""
    return Frame(Opcode.CLOSE, struct.pack("!H", code) + reason).serialize(mask=True)


@dataclass
class Received:
    """What the server sent after the handshake, until it closed the TCP connection."""

    frames: list[Frame] = field(default_factory=list)
    # Set when the server sent something Frame.parse refuses (the reason).
    invalid: str | None = None
    # Set when the server had not closed the connection when the client gave up.
    still_open: bool = False

    @property
    def close_code(self) -> int | None:
        """The code in the server's first close frame (1005 for an empty one); None if none."""
        for item in self.frames:
            if item.opcode == Opcode.CLOSE:
                return struct.unpack("!H", item.data[:2])[0] if len(item.data) >= 2 else 1005
        return None

    @property
    def data(self) -> list[bytes]:
        """Payloads of the data frames (text and binary), in order."""
        return [bytes(f.data) for f in self.frames if f.opcode in (Opcode.TEXT, Opcode.BINARY)]


class RawClient:
    """One TCP connection: a real handshake, then bytes written as given."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = StreamReader()
        # Frames that came in the same read as the handshake response.
        self.early: list[Frame] = []

    @classmethod
    async def open(cls, port: int, path: str = "/", **headers: str) -> RawClient:
        """Connect and complete the opening handshake (fails if the server refuses it)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"))
        request = protocol.connect()
        request.headers["Origin"] = f"http://127.0.0.1:{port}"
        for name, value in headers.items():
            request.headers[name.replace("_", "-")] = value
        protocol.send_request(request)
        for data in protocol.data_to_send():
            writer.write(data)
        async with asyncio.timeout(10):
            while protocol.state is State.CONNECTING:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                protocol.receive_data(chunk)
        if protocol.handshake_exc is not None:
            writer.close()
            raise protocol.handshake_exc
        client.early = [e for e in protocol.events_received() if isinstance(e, Frame)]
        return client

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def read_until_closed(self, seconds: float = 5.0) -> Received:
        """Every frame the server sends until it closes TCP (answering its close frame).

        After ``seconds`` the connection is given up on: ``still_open`` says the server did
        not close it.
        """
        received = Received(frames=list(self.early))
        parser = self._parser()
        next(parser)
        replied = False
        try:
            async with asyncio.timeout(seconds):
                while True:
                    try:
                        chunk = await self.reader.read(65536)
                    except ConnectionError:
                        chunk = b""
                    if not chunk:
                        break
                    self.buffer.feed_data(chunk)
                    try:
                        parsed = parser.send(None)
                    except ProtocolError as error:
                        received.invalid = str(error)
                        break
                    received.frames.extend(parsed)
                    if not replied and received.close_code is not None:
                        replied = True
                        with contextlib.suppress(ConnectionError, RuntimeError):
                            self.send(close_frame(1000))
        except TimeoutError:
            received.still_open = True
        self.writer.close()
        return received

    def _parser(self) -> Generator[list[Frame], None, None]:
        """Yields the frames parsed so far each time it is resumed after more bytes arrive."""
        frames: list[Frame] = []
        reading = Frame.parse(self.buffer.read_exact, mask=False, max_size=None)
        while True:
            try:
                request = next(reading)
                while request is None:
                    yield frames
                    frames = []
                    request = reading.send(None)
            except StopIteration as done:
                frames.append(done.value)
                reading = Frame.parse(self.buffer.read_exact, mask=False, max_size=None)

    def close(self) -> None:
        self.writer.close()


async def http_exchange(port: int, request: bytes, seconds: float = 10.0) -> bytes:
    """Send ``request`` as bytes; everything the server answers until it closes or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    answer = b""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(seconds):
            while b"\r\n\r\n" not in answer:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                answer += chunk
    writer.close()
    return answer


def status_of(answer: bytes) -> int | None:
    """The status code of an HTTP response, None when the server sent none."""
    if not answer.startswith(b"HTTP/1."):
        return None
    return int(answer.split(b" ", 2)[1])


@contextlib.asynccontextmanager
async def raw_client(port: int, path: str = "/") -> AsyncIterator[RawClient]:
    client = await RawClient.open(port, path)
    try:
        yield client
    finally:
        client.close()


__all__ = [
    "RawClient",
    "Received",
    "close_frame",
    "frame",
    "http_exchange",
    "raw_client",
    "raw_frame",
    "status_of",
]
