"""``run()``: uvicorn with the binding's keepalive and size options mapped onto it.

The ASGI protocol hides ping and pong frames from applications, so under an
ASGI server keepalive and the frame-size limit are the server's job. This maps
them: ``ping_period`` → ``ws_ping_interval``, ``pong_wait - ping_period`` →
``ws_ping_timeout`` (so a silent peer is dropped ``pong_wait`` after it was
last heard, as in the seed), ``max_message_size`` → ``ws_max_size``.
"""

from __future__ import annotations

import inspect
import socket
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..extras import require
from ..options import Options
from .asgi import asgi, sessions_drained_by
from .drain import Drain

if TYPE_CHECKING:
    import uvicorn

__all__ = ["run", "uvicorn_config"]


def uvicorn_config(
    app: Any,
    options: Options | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    **settings: Any,
) -> uvicorn.Config:
    """A ``uvicorn.Config`` for ``app`` with ``options`` mapped; ``settings`` override."""
    if getattr(app, "__wschannels_spec__", None) is not None and not _is_asgi_app(app):
        app = asgi(app)
    options = options if options is not None else Options()
    ping_timeout = None
    if options.pong_wait is not None:
        ping_timeout = options.pong_wait - (options.ping_period or 0.0)
    mapped: dict[str, Any] = {
        "ws": "websockets-sansio",
        "ws_ping_interval": options.ping_period,
        "ws_ping_timeout": ping_timeout,
        "ws_max_size": options.max_message_size,
    }
    mapped.update(settings)
    config: uvicorn.Config = _uvicorn("wschannels.uvicorn_config()").Config(
        app, host=host, port=port, **mapped
    )
    return config


def _uvicorn(feature: str) -> ModuleType:
    return require("uvicorn", "uvicorn", feature)


def _is_asgi_app(app: Any) -> bool:
    """A decorated handler takes a WebSocket; an ASGI app takes (scope, receive, send)."""
    return "scope" in inspect.signature(app).parameters


def run(
    app: Any,
    options: Options | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    shutdown_timeout: float = 10.0,
    **settings: Any,
) -> None:
    """Serve ``app`` (an ASGI app, or a decorated handler) with uvicorn until stopped.

    On SIGINT or SIGTERM the server drains as ``run_picows`` does: it stops
    accepting (503 for a handshake under way), closes every wschannels
    connection with 1001 (going away) after what is queued for it, in batches,
    lets the handlers see ``done``, and cancels what is left after
    ``shutdown_timeout`` seconds; then uvicorn's own shutdown runs (it closes
    any other WebSocket with 1012). A ``uvicorn.Server`` made from
    :func:`uvicorn_config` has only uvicorn's.

    uvicorn has no timeout for a handshake under way (a client may trickle its
    request for as long as it likes) and no cap on handshakes at once; what it
    offers is ``limit_concurrency`` (connections beyond it get 503), passed
    through ``settings``. Put a proxy in front for the rest
    (docs/how-to/nginx.md), or serve with :func:`serve_picows` /
    :func:`serve_websockets`, whose ``handshake_timeout`` cuts a slow handshake.

    Args:
        app: an ASGI application, or a handler decorated by a binding.
        options: the binding options whose keepalive and size limits the server enforces.
        host: interface to listen on.
        port: TCP port.
        shutdown_timeout: seconds the shutdown lets connections end before their
            handlers are cancelled.
        settings: any other ``uvicorn.Config`` setting, e.g. ``log_level="warning"``.
    """
    server_class = _uvicorn("wschannels.run()").Server
    drain = Drain(shutdown_timeout)

    class DrainingServer(server_class):  # type: ignore[misc,valid-type]
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            for listening in self.servers:  # stop accepting before the drain, as uvicorn does
                listening.close()
            await drain.drain()
            await super().shutdown(sockets)

    with sessions_drained_by(drain):
        DrainingServer(uvicorn_config(app, options, host=host, port=port, **settings)).run()
