"""Room members over the real ``websockets`` client, speaking the chat's JSON protocol."""

from __future__ import annotations

import json
import secrets
import socket
from typing import Any
from urllib.parse import quote, urlencode

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

TIMEOUT = 10.0


class Member:
    """One connection to ``/sockets/rooms/{room}/{name}``, from a page on the server's origin."""

    def __init__(
        self,
        server_url: str,
        room: str,
        name: str,
        origin: str | None = None,
        *,
        stalled: bool = False,
        since: str | None = None,
        page: str | None = None,
    ) -> None:
        """Connect; a ``stalled`` member soon stops taking frames off its socket.

        Until it calls :meth:`next`, a stalled member holds one frame and leaves
        the rest in a small TCP receive window, so the server's queue for it grows.
        """
        host = server_url.removeprefix("http://")
        self.name = name
        sock = None
        if stalled:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", int(host.rsplit(":", 1)[1])))
        # Each member is a page of its own unless told otherwise.
        page = page or secrets.token_hex(6)
        query = urlencode(
            {key: value for key, value in (("since", since), ("page", page)) if value}
        )
        self._connecting: Any = connect(
            f"ws://{host}/sockets/rooms/{quote(room, safe='')}/{quote(name, safe='')}"
            + (f"?{query}" if query else ""),
            origin=Origin(origin or server_url),
            open_timeout=TIMEOUT,
            compression=None,
            legacy=False,
            sock=sock,
            max_queue=1 if stalled else 16,
        )
        self.socket: ClientConnection = self._connecting.__enter__()

    def say(self, text: str, **extra: Any) -> None:
        self.socket.send(json.dumps({"typ": "message", "text": text, **extra}))

    def send_raw(self, frame: str) -> None:
        self.socket.send(frame)

    def next(self) -> dict[str, Any]:
        """The next frame from the server, decoded."""
        message: dict[str, Any] = json.loads(self.socket.recv(timeout=TIMEOUT))
        return message

    def next_of(self, typ: str) -> dict[str, Any]:
        """The next frame of type ``typ``, skipping others (e.g. join notices)."""
        while True:
            message = self.next()
            if message["typ"] == typ:
                return message

    def lines(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` chat lines (``typ`` "message"), skipping other frames."""
        return [self.next_of("message") for _ in range(count)]

    def close_code(self) -> int | None:
        """Read until the server closes; the code it closed with."""
        try:
            while True:
                self.socket.recv(timeout=TIMEOUT)
        except ConnectionClosed as closed:
            return None if closed.rcvd is None else closed.rcvd.code

    def close(self) -> None:
        if self._connecting is not None:
            connecting, self._connecting = self._connecting, None
            connecting.__exit__(None, None, None)

    def __enter__(self) -> Member:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
