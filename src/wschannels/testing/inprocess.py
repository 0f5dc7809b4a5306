"""In-process connections for :func:`wschannels.testing.connect`: no port, no server.

A decorated handler runs on the engine's in-memory server
(:mod:`wschannels.servers.memory`), through the same session pipeline as on
every real server. A Starlette or FastAPI app, or any ASGI app, is called
with an in-memory ASGI ``receive``/``send`` pair, as an ASGI server would.
Both look to :class:`~wschannels.testing.Client` like the ``websockets``
client's connection, so the same tests run against a live URL or in-process.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from ..close_codes import CloseCode
from ..codecs import Frame
from ..extras import require
from ..handler import spec_of
from ..servers.memory import MemoryClient, connect_memory

__all__ = ["AsgiConnection", "HandlerConnection", "RefusedInProcess", "open_in_process"]

_exceptions = require("websockets.exceptions", "testing", "wschannels.testing")
_frames = require("websockets.frames", "testing", "wschannels.testing")

HOST = "testserver"


class RefusedInProcess(Exception):
    """The app refused the handshake: the status and body it answered with."""

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        super().__init__(f"refused with {status}")
        self.status = status
        self.body = body
        self.headers = dict(headers)


class _Response:
    """The handshake response's headers, as the ``websockets`` client shows them."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = _Headers(headers)


class _Headers:
    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)

    def raw_items(self) -> list[tuple[str, str]]:
        return list(self._headers.items())


def _decoded(headers: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in headers}


def _closed(code: int | None, reason: str = "") -> Exception:
    """The ``websockets`` exception for a connection closed with ``code`` (None: dropped)."""
    if code is None or code == CloseCode.ABNORMAL_CLOSURE:
        return _exceptions.ConnectionClosedError(None, None)  # type: ignore[no-any-return]
    close = _frames.Close(code, reason)
    if code in (CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY):
        return _exceptions.ConnectionClosedOK(close, close, True)  # type: ignore[no-any-return]
    return _exceptions.ConnectionClosedError(close, close, True)  # type: ignore[no-any-return]


class HandlerConnection:
    """A connection to a decorated handler on the in-memory server."""

    def __init__(self, client: MemoryClient) -> None:
        self._client = client
        self.subprotocol: str | None = None
        self.response = _Response({})
        self.transport = self

    @property
    def close_code(self) -> int | None:
        return self._client.close_code if self._client.connection.closed else None

    @property
    def close_reason(self) -> str | None:
        return "" if self.close_code is not None else None

    async def send(self, message: Frame) -> None:
        if self._client.connection.closed:
            raise _closed(self.close_code)
        await self._client.send(message)

    async def recv(self) -> Frame:
        try:
            return await self._client.receive(timeout=365 * 86400.0)  # the Client's deadline rules
        except ConnectionError:
            raise _closed(self.close_code) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not self._client.connection.closed:
            self._client.close(code)
        try:
            await self._client.wait_closed()
        except BaseException:  # the handler's own failure is the server's business
            pass

    def is_closing(self) -> bool:
        return self._client.connection.closed

    def abort(self) -> None:
        if not self._client.connection.closed:
            self._client.drop()


class AsgiConnection:
    """A connection to an ASGI app, called in-process as an ASGI server would call it."""

    def __init__(self, app: Any, scope: dict[str, Any]) -> None:
        self._app = app
        self._scope = scope
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._to_client: asyncio.Queue[Frame | None] = asyncio.Queue()
        self._accepted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._refusal: tuple[int, list[tuple[bytes, bytes]], bytes] | None = None
        self._task: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.subprotocol: str | None = None
        self.response = _Response({})
        self.transport = self

    async def open(self) -> None:
        self._to_app.put_nowait({"type": "websocket.connect"})
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.wait((self._accepted, self._task), return_when=asyncio.FIRST_COMPLETED)
        if not self._accepted.done():
            self._task.result()  # the app raised before answering: that is the error
            raise RefusedInProcess(500, b"the app returned without accepting", {})
        self._accepted.result()

    async def _run(self) -> None:
        try:
            await self._app(self._scope, self._to_app.get, self._from_app)
        finally:
            if not self._accepted.done():
                self._accepted.set_exception(
                    RefusedInProcess(403, b"", {}) if self.close_code else RuntimeError("no answer")
                )
            if self.close_code is None:
                self.close_code = CloseCode.ABNORMAL_CLOSURE
            self._to_client.put_nowait(None)

    async def _from_app(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            self.subprotocol = message.get("subprotocol")
            self.response = _Response(_decoded(message.get("headers", [])))
            self._accepted.set_result(None)
        elif kind == "websocket.send":
            text = message.get("text")
            self._to_client.put_nowait(text if text is not None else message.get("bytes") or b"")
        elif kind == "websocket.close":
            self.close_code = message.get("code", CloseCode.NORMAL_CLOSURE)
            self.close_reason = message.get("reason") or ""
            if not self._accepted.done():
                self._accepted.set_exception(RefusedInProcess(403, b"", {}))
            self._to_app.put_nowait({"type": "websocket.disconnect", "code": self.close_code})
            self._to_client.put_nowait(None)
        elif kind == "websocket.http.response.start":
            self._refusal = (message["status"], list(message.get("headers", [])), b"")
        elif kind == "websocket.http.response.body" and self._refusal is not None:
            status, raw, body = self._refusal
            body += message.get("body", b"")
            self._refusal = (status, raw, body)
            if not message.get("more_body", False):
                self.close_code = CloseCode.ABNORMAL_CLOSURE
                self._accepted.set_exception(RefusedInProcess(status, body, _decoded(raw)))

    async def send(self, message: Frame) -> None:
        if self.close_code is not None:
            raise _closed(self.close_code, self.close_reason or "")
        if isinstance(message, str):
            self._to_app.put_nowait({"type": "websocket.receive", "text": message})
        else:
            self._to_app.put_nowait({"type": "websocket.receive", "bytes": bytes(message)})

    async def recv(self) -> Frame:
        message = await self._to_client.get()
        if message is None:
            self._to_client.put_nowait(None)  # every later receive sees the end too
            raise _closed(self.close_code, self.close_reason or "")
        return message

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self._to_app.put_nowait({"type": "websocket.disconnect", "code": code})
        if self._task is not None:
            await asyncio.wait((self._task,), timeout=5.0)

    def is_closing(self) -> bool:
        return self.close_code is not None

    def abort(self) -> None:
        if self.close_code is None:
            self.close_code = CloseCode.ABNORMAL_CLOSURE
            self._to_app.put_nowait({"type": "websocket.disconnect", "code": 1006})


def _is_decorated_handler(target: Any) -> bool:
    """A handler a binding decorated, not an ASGI app (which takes scope, receive, send)."""
    try:
        spec_of(target)
    except TypeError:
        return False
    return "scope" not in inspect.signature(target).parameters


async def open_in_process(
    target: Any,
    path: str,
    *,
    origin: str | None,
    headers: Mapping[str, str] | None,
    subprotocols: Sequence[str] | None,
    params: Mapping[str, Any] | None,
) -> HandlerConnection | AsgiConnection:
    """Open a connection to ``target`` (a decorated handler or an ASGI app) in-process."""
    if _is_decorated_handler(target):
        try:
            client = await connect_memory(target, params, origin=origin, host=HOST)
        except PermissionError as refused:
            raise RefusedInProcess(403, str(refused).split(" ", 1)[1].encode(), {}) from None
        return HandlerConnection(client)
    parts = urlsplit(path or "/")
    raw_headers = [(b"host", HOST.encode())]
    if origin is not None:
        raw_headers.append((b"origin", origin.encode("latin-1")))
    for name, value in (headers or {}).items():
        raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": (HOST, 80),
        "client": ("testclient", 50000),
        "root_path": "",
        "path": parts.path or "/",
        "raw_path": (parts.path or "/").encode(),
        "query_string": parts.query.encode(),
        "headers": raw_headers,
        "subprotocols": list(subprotocols or ()),
        "extensions": {"websocket.http.response": {}},
        "state": {},
    }
    connection = AsgiConnection(target, scope)
    await connection.open()
    return connection
