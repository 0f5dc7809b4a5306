"""A WebSocket client on a bare socket, for what well-behaved clients never do.

It answers pings only when told to, reads only when asked, and sends any
frame, malformed ones included (reserved bits, a data frame inside a
fragmented message, forbidden close codes). The handshake and the parsing
of what the server sends are websockets' sans-I/O ``ClientProtocol``; only
the frames it sends are put together here, since no library writes broken
frames.
"""

from __future__ import annotations

import asyncio
import os
import struct

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

WAIT = 10.0


class RawClient:
    """One connection; ``pings`` and ``pongs`` count those the server sent."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: ClientProtocol,
        response: Response,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = protocol
        self.response = response
        self.pings = 0
        self.pongs = 0
        self.answer_pings = False
        self.closed_by_server: Close | None = None
        self._frames: list[Frame] = []

    @classmethod
    async def connect(
        cls,
        port: int,
        path: str = "/",
        *,
        origin: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RawClient:
        """Open a TCP connection and send the handshake; the response is in ``response``."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return await cls.handshake(reader, writer, port, path, origin=origin, headers=headers)

    @classmethod
    async def handshake(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        port: int,
        path: str = "/",
        *,
        origin: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RawClient:
        """Send the handshake on a TCP connection already open; read the response."""
        protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None)
        request = protocol.connect()
        request.headers["Origin"] = origin or f"http://127.0.0.1:{port}"
        for name, value in (headers or {}).items():
            del request.headers[name]
            request.headers[name] = value
        protocol.send_request(request)
        writer.write(b"".join(protocol.data_to_send()))
        client = cls(reader, writer, protocol, Response(0, "", None))  # type: ignore[arg-type]
        async with asyncio.timeout(WAIT):
            while True:
                data = await reader.read(65536)
                if data:
                    protocol.receive_data(data)
                else:
                    protocol.receive_eof()
                events = protocol.events_received()
                for event in events:
                    if isinstance(event, Response):
                        client.response = event
                    else:
                        client._frames.append(event)
                if client.response.status_code or not data:
                    return client

    @property
    def accepted(self) -> bool:
        return self.response.status_code == 101

    # -- sending ---------------------------------------------------------------------

    def send_frame(
        self, opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0
    ) -> None:
        """Write one masked frame exactly as given; ``rsv`` is the three reserved bits (0-7)."""
        head = (0x80 if fin else 0) | (rsv << 4) | opcode
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", head, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", head, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", head, 0x80 | 127, length)
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.writer.write(header + mask + masked)

    def send_text(self, text: str) -> None:
        self.send_frame(Opcode.TEXT, text.encode())

    def send_close(self, code: int | None) -> None:
        self.send_frame(Opcode.CLOSE, b"" if code is None else struct.pack("!H", code))

    # -- reading ---------------------------------------------------------------------

    async def next_frame(self) -> Frame | None:
        """The next data or close frame from the server (pings counted); None at EOF."""
        while not self._frames:
            data = await self.reader.read(65536)
            if data:
                self.protocol.receive_data(data)
            else:
                self.protocol.receive_eof()
            for event in self.protocol.events_received():
                assert isinstance(event, Frame)
                if event.opcode is Opcode.PING:
                    self.pings += 1
                    if self.answer_pings:
                        self.writer.write(b"".join(self.protocol.data_to_send()))
                elif event.opcode is Opcode.PONG:
                    self.pongs += 1
                else:
                    self._frames.append(event)
            if not data and not self._frames:
                return None
        frame = self._frames.pop(0)
        if frame.opcode is Opcode.CLOSE:
            self.closed_by_server = Close.parse(frame.data) if frame.data else Close(1005, "")
        return frame

    async def close_code(self) -> int:
        """Read until the server's close frame (its code) or EOF without one (1006)."""
        async with asyncio.timeout(WAIT):
            while True:
                frame = await self.next_frame()
                if frame is None:
                    return 1006
                if frame.opcode is Opcode.CLOSE:
                    assert self.closed_by_server is not None
                    return self.closed_by_server.code

    async def eof(self) -> None:
        """Read (and drop) everything until the server closes the socket."""
        async with asyncio.timeout(WAIT):
            while await self.reader.read(65536):
                pass

    async def aclose(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass
