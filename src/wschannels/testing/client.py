"""A WebSocket test client that never hangs: every wait has a deadline.

Built on the ``websockets`` client. A ``receive`` that times out raises
:class:`ReceiveTimeout`, whose message says what did arrive, so a wrong test
fails with the evidence instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import msgspec

from ..extras import require
from . import inprocess
from .inprocess import RefusedInProcess

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = [
    "DEFAULT_TIMEOUT",
    "SAME_ORIGIN",
    "Client",
    "Closed",
    "Connecting",
    "ReceiveTimeout",
    "Refused",
    "basic_auth",
    "bearer",
    "connect",
    "same_origin",
]

_client = require("websockets.asyncio.client", "testing", "wschannels.testing")
_exceptions = require("websockets.exceptions", "testing", "wschannels.testing")

DEFAULT_TIMEOUT: Final = 5.0
"""Seconds any wait of the client may take unless told otherwise."""

_EXCERPT = 80  # characters of each received message shown in an error
_SHOWN = 5  # received messages shown in an error, the latest ones

class _SameOrigin:
    def __repr__(self) -> str:
        return "SAME_ORIGIN"


SAME_ORIGIN: Final = _SameOrigin()
"""``origin=SAME_ORIGIN``: send the Origin a page served by the same server would send."""


def same_origin(url: str) -> str:
    """The Origin a browser page on the server at ``url`` sends: ``ws://h:p/x`` → ``http://h:p``."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


def bearer(token: str) -> dict[str, str]:
    """An ``Authorization: Bearer`` header, for ``connect(..., headers=bearer(token))``."""
    return {"Authorization": f"Bearer {token}"}


def basic_auth(user: str, password: str) -> dict[str, str]:
    """An ``Authorization: Basic`` header, for ``connect(..., headers=basic_auth(u, p))``."""
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {credentials}"}


def _excerpt(message: str | bytes) -> str:
    shown = repr(message[:_EXCERPT])
    return shown + (f"... ({len(message)} in all)" if len(message) > _EXCERPT else "")


def _so_far(received: Sequence[str | bytes]) -> str:
    if not received:
        return "nothing was received on this connection"
    latest = received[-_SHOWN:]
    lines = "\n".join(f"  {_excerpt(message)}" for message in latest)
    more = f" (the last {len(latest)} shown)" if len(received) > len(latest) else ""
    return f"{len(received)} message(s) were received on this connection{more}:\n{lines}"


class Refused(Exception):
    """The server refused the handshake with an HTTP response (e.g. 403 for a foreign Origin)."""

    def __init__(self, url: str, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.url = url
        self.status = status
        self.body = body
        self.headers = dict(headers)
        super().__init__(f"{url}: the handshake was refused with {status}: {body[:200]!r}")


class Closed(Exception):
    """The connection is closed: a receive cannot be answered any more."""

    def __init__(self, code: int | None, reason: str, received: Sequence[str | bytes]) -> None:
        self.code = code
        self.reason = reason
        self.received = list(received)
        super().__init__(f"the connection closed with {code} {reason!r}; {_so_far(received)}")


class ReceiveTimeout(TimeoutError):
    """Nothing arrived in time; the message lists what had arrived before."""

    def __init__(self, timeout: float, received: Sequence[str | bytes]) -> None:
        self.timeout = timeout
        self.received = list(received)
        super().__init__(f"nothing received within {timeout} s; {_so_far(received)}")


class Client:
    """One open connection: ``send``, ``receive`` with a deadline, ``close``, and what happened.

    ``received`` holds every message this client received, in order, for
    assertions and for the error messages.
    """

    def __init__(self, connection: ClientConnection, url: str, timeout: float) -> None:
        self._connection = connection
        self.url = url
        self.timeout = timeout
        self.received: list[str | bytes] = []

    @property
    def close_code(self) -> int | None:
        """The close code, once the connection is closed (1006 when it just dropped)."""
        return self._connection.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason, once the connection is closed."""
        return self._connection.close_reason

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server chose, if any."""
        return self._connection.subprotocol

    @property
    def response_headers(self) -> dict[str, str]:
        """The headers of the server's handshake response."""
        response = self._connection.response
        return dict(response.headers.raw_items()) if response is not None else {}

    async def send(self, message: str | bytes | Any) -> None:
        """Send ``str`` as a text frame, ``bytes`` as a binary one, anything else as JSON text."""
        if not isinstance(message, str | bytes):
            message = msgspec.json.encode(message).decode()
        try:
            async with asyncio.timeout(self.timeout):
                await self._connection.send(message)
        except _exceptions.ConnectionClosed:
            raise Closed(self.close_code, self.close_reason or "", self.received) from None

    async def receive(self, timeout: float | None = None) -> str | bytes:
        """The next message: ``str`` for a text frame, ``bytes`` for a binary one.

        Raises:
            ReceiveTimeout: nothing arrived within ``timeout`` (default: the client's).
            Closed: the connection closed first.
        """
        wait = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(wait):
                message = await self._connection.recv()
        except TimeoutError:
            raise ReceiveTimeout(wait, self.received) from None
        except _exceptions.ConnectionClosed:
            raise Closed(self.close_code, self.close_reason or "", self.received) from None
        self.received.append(message)
        return message

    async def receive_text(self, timeout: float | None = None) -> str:
        """The next message, which must be a text frame."""
        message = await self.receive(timeout)
        if not isinstance(message, str):
            raise AssertionError(f"expected a text frame, got binary {_excerpt(message)}")
        return message

    async def receive_bytes(self, timeout: float | None = None) -> bytes:
        """The next message, which must be a binary frame."""
        message = await self.receive(timeout)
        if not isinstance(message, bytes):
            raise AssertionError(f"expected a binary frame, got text {_excerpt(message)}")
        return message

    async def receive_json(self, into: Any = Any, timeout: float | None = None) -> Any:
        """The next message decoded as JSON, into the type ``into`` when given (validated)."""
        message = await self.receive(timeout)
        return msgspec.json.decode(message, type=into)

    async def wait_closed(self, timeout: float | None = None) -> int | None:
        """Wait until the server closes the connection; the close code.

        Messages that arrive meanwhile are kept in ``received``.
        """
        wait = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(wait):
                while True:
                    self.received.append(await self._connection.recv())
        except _exceptions.ConnectionClosed:
            return self.close_code
        except TimeoutError:
            raise ReceiveTimeout(wait, self.received) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and wait (within the timeout) for the server's close frame."""
        await self._connection.close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection at once, without a closing handshake (as a network failure)."""
        transport = self._connection.transport
        if transport is None or transport.is_closing():
            return
        try:
            transport.abort()
        except RuntimeError:  # its event loop is closed: the connection went with it
            pass

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class Connecting:
    """What :func:`connect` returns: ``await`` it for a :class:`Client`, or ``async with`` it."""

    def __init__(self, opening: Any, url: str, timeout: float) -> None:
        self._opening = opening
        self._url = url
        self._timeout = timeout
        self.client: Client | None = None
        """The client, once the connection is open."""

    async def _open(self) -> Client:
        try:
            connection = await self._opening
        except _exceptions.InvalidStatus as refusal:
            response = refusal.response
            headers = dict(response.headers.raw_items())  # a repeated header: the last one
            raise Refused(self._url, response.status_code, response.body or b"", headers) from None
        except RefusedInProcess as refusal:
            raise Refused(self._url, refusal.status, refusal.body, refusal.headers) from None
        self.client = Client(connection, self._url, self._timeout)
        return self.client

    def __await__(self) -> Generator[Any, None, Client]:
        return self._open().__await__()

    async def __aenter__(self) -> Client:
        return await self._open()

    async def __aexit__(self, *exc_info: object) -> None:
        if self.client is not None:
            await self.client.close()


def connect(
    target: str | Any,
    path: str | None = None,
    *,
    origin: str | _SameOrigin | None = None,
    headers: Mapping[str, str] | None = None,
    subprotocols: Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_size: int | None = 2**20,
    compression: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Connecting:
    """Open a test connection: ``client = await connect(url)`` or ``async with connect(url) as c``.

    Args:
        target: a ``ws://`` or ``wss://`` URL of a live server; or, run
            in-process with no server and no port, a Starlette or FastAPI app,
            any ASGI app, or a decorated handler (on the engine's in-memory
            transport). An app's lifespan is not run: start what it starts
            (``async with hub:``) in the test.
        path: appended to ``target``; for an app, the path requested.
        origin: the Origin header: ``None`` sends none (as scripts and servers
            do), :data:`SAME_ORIGIN` the one a page on that server sends, or any
            string.
        headers: more request headers, e.g. ``bearer(token)``.
        subprotocols: subprotocols to offer.
        timeout: seconds each wait may take: the handshake, each ``receive``,
            ``send`` and ``close``.
        max_size: largest message accepted from the server, in bytes.
        compression: ``"deflate"`` to offer permessage-deflate; off by default.
        params: a decorated handler's parameters other than its views (what a
            route's path would give), when it runs in-process.

    Raises:
        Refused: (when awaited) the server answered the handshake with an HTTP
            status instead of switching protocols.
    """
    if not isinstance(target, str):
        where = f"in-process {getattr(target, '__qualname__', type(target).__name__)}{path or ''}"
        if isinstance(origin, _SameOrigin):
            origin = f"http://{inprocess.HOST}"
        opening = inprocess.open_in_process(
            target,
            path or "/",
            origin=origin,
            headers=headers,
            subprotocols=subprotocols,
            params=params,
        )
        return Connecting(opening, where, timeout)
    url = target + (path or "")
    if isinstance(origin, _SameOrigin):
        origin = same_origin(url)
    opening = _client.connect(
        url,
        origin=origin,
        additional_headers=dict(headers) if headers else None,
        subprotocols=list(subprotocols) if subprotocols else None,
        compression=compression,
        open_timeout=timeout,
        close_timeout=timeout,
        max_size=max_size,
        proxy=None,
        ping_interval=None,
    )
    return Connecting(opening, url, timeout)
