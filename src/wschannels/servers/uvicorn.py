"""``run()``: uvicorn with the binding's keepalive and size options mapped onto it.

The ASGI protocol hides ping and pong frames from applications, so under an
ASGI server keepalive and the frame-size limit are the server's job. This maps
them: ``ping_period`` → ``ws_ping_interval``, ``pong_wait - ping_period`` →
``ws_ping_timeout`` (so a silent peer is dropped ``pong_wait`` after it was
last heard, as in the seed), ``max_message_size`` → ``ws_max_size``.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..extras import require
from ..options import Options
from .asgi import asgi

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
    **settings: Any,
) -> None:
    """Serve ``app`` (an ASGI app, or a decorated handler) with uvicorn until stopped.

    On SIGINT or SIGTERM uvicorn's own shutdown applies: it closes open
    WebSockets with 1012 (service restart) and waits for the handlers.

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
        settings: any other ``uvicorn.Config`` setting, e.g. ``log_level="warning"``.
    """
    server = _uvicorn("wschannels.run()").Server
    server(uvicorn_config(app, options, host=host, port=port, **settings)).run()
