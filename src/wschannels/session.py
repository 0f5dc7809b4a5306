"""The session pipeline: what every server adapter does with a WebSocket, written once.

An adapter matches the path, then: :func:`check_origin` (a refusal it sends
as an HTTP status), accepts the upgrade, :func:`open_connection` with its
:class:`~wschannels.engine.Transport`, and runs :func:`serve` (the handler
with its views, then the close with the handler's outcome). Logging of each
step lives here too, so every server says the same thing the same way.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Sequence
from typing import Any, NamedTuple

from .close_codes import CloseCode
from .engine import Connection, Transport
from .errors import ChannelClosed, excerpt
from .handler import HandlerSpec
from .origin import origin_allowed

__all__ = [
    "NOT_AN_UPGRADE",
    "NOT_FOUND",
    "ORIGIN_NOT_ALLOWED",
    "SHUTTING_DOWN",
    "UNSUPPORTED_VERSION",
    "Refusal",
    "check_origin",
    "check_version",
    "open_connection",
    "serve",
]


class Refusal(NamedTuple):
    """An upgrade refused: the HTTP status, body and extra headers to answer with."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


ORIGIN_NOT_ALLOWED = Refusal(403, b"Origin not allowed")
NOT_FOUND = Refusal(404, b"Not Found")
NOT_AN_UPGRADE = Refusal(400, b"Bad Request: expected a WebSocket upgrade")
UNSUPPORTED_VERSION = Refusal(
    426, b"Upgrade Required: WebSocket version 13", (("Sec-WebSocket-Version", "13"),)
)
SHUTTING_DOWN = Refusal(503, b"Server shutting down")

# A traceback line longer than this is cut: exception messages may carry client data.
_TRACEBACK_LINE = 300


def check_origin(
    spec: HandlerSpec, origin: str | None, host: str | None, peer: str
) -> Refusal | None:
    """None if ``origin`` may open this handler's WebSocket, else the refusal (logged)."""
    options = spec.options
    if origin_allowed(options.allowed_origin, origin, host, require_origin=options.require_origin):
        return None
    if not options.skip_logging and options.log_level >= 1:
        options.logger.warning(
            "[%s] origin %s not allowed", peer, "(none)" if origin is None else excerpt(origin)
        )
    return ORIGIN_NOT_ALLOWED


def check_version(versions: Sequence[str], keys: Sequence[str]) -> Refusal | None:
    """None for one ``Sec-WebSocket-Version: 13`` and one key, else the refusal.

    Every ``Sec-WebSocket-Version`` and ``Sec-WebSocket-Key`` header the request
    carries: a repeated one is ambiguous (400), another version than RFC 6455's
    13 gets the 426 that names it. For servers that accept older drafts
    (aiohttp takes 7 and 8) or leave the checks to the application (picows).
    """
    if len(keys) > 1 or len(versions) > 1:
        return NOT_AN_UPGRADE
    return None if list(versions) == ["13"] else UNSUPPORTED_VERSION


def open_connection(
    spec: HandlerSpec, transport: Transport, peer: str, *, keepalive: bool = False
) -> Connection:
    """The engine for one accepted WebSocket; ``keepalive`` when the server exposes ping/pong."""
    connection = Connection(
        spec.codec,
        spec.options,
        transport,
        peer,
        wants_receiver=spec.wants_receiver,
        keepalive=keepalive,
        binding=spec.binding,
    )
    connection.log.info("connected")
    return connection


async def serve(spec: HandlerSpec, connection: Connection, arguments: dict[str, Any]) -> None:
    """Run the handler with its views, then close with its outcome.

    Returns (1000), a code sent on ``disconnect`` (first code wins), raises
    (1011, logged with a traceback), or is cancelled by a server shutting
    down (1001, then the cancellation goes on). Returns once the connection
    is over.
    """
    arguments.update(spec.view_arguments(connection))
    try:
        await spec.handler(**arguments)
    except ChannelClosed as error:
        if not connection.closed:  # not the connection ending under it: a bug
            _log_failure(connection, error)
            connection.disconnect(CloseCode.INTERNAL_SERVER_ERR)
    except asyncio.CancelledError:
        connection.disconnect(CloseCode.GOING_AWAY)
        await _wait_closed(connection)
        raise
    except Exception as error:
        _log_failure(connection, error)
        connection.disconnect(CloseCode.INTERNAL_SERVER_ERR)
    else:
        connection.disconnect(CloseCode.NORMAL_CLOSURE)
    await _wait_closed(connection)


async def _wait_closed(connection: Connection) -> None:
    await connection.wait_closed()
    connection.discard_unread()  # the handler returned: nobody will read what is left


def _log_failure(connection: Connection, error: BaseException) -> None:
    """Log a handler's failure with its traceback, cutting lines that may carry client data."""
    lines = "".join(traceback.format_exception(error)).rstrip("\n").split("\n")
    if all(len(line) <= _TRACEBACK_LINE for line in lines):
        connection.log.error("handler failed", exc_info=error)
        return
    short = [
        f"{line[:_TRACEBACK_LINE]}... ({len(line)} characters)"
        if len(line) > _TRACEBACK_LINE
        else line
        for line in lines
    ]
    connection.log.error("handler failed\n%s", "\n".join(short))
