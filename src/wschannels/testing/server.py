"""A real uvicorn server for a test: started on a free port of 127.0.0.1, stopped after."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ..options import Options
from ..servers.uvicorn import uvicorn_config

__all__ = ["LiveServer", "serve"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


class LiveServer:
    """A running server: its port, base URLs, and the Origin its own pages send."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.http = f"http://{host}:{port}"
        self.ws = f"ws://{host}:{port}"
        self.origin = self.http

    def url(self, path: str = "/") -> str:
        """The ``ws://`` URL of ``path`` on this server."""
        return self.ws + path


@contextlib.asynccontextmanager
async def serve(
    app: Any,
    options: Options | None = None,
    *,
    host: str = "127.0.0.1",
    **settings: Any,
) -> AsyncIterator[LiveServer]:
    """Serve ``app`` (an ASGI app or a decorated handler) with uvicorn for the block.

    The server runs in the test's own event loop, on a port the system picks,
    with ``options`` mapped as :func:`wschannels.run` maps them; ``settings``
    are more ``uvicorn.Config`` settings (``log_level`` defaults to
    ``"warning"``). It needs the ``uvicorn`` extra.
    """
    import uvicorn

    settings.setdefault("log_level", "warning")
    config = uvicorn_config(app, options, host=host, port=0, **settings)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(_START_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield LiveServer(port, host)
    finally:
        server.should_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, _STOP_TIMEOUT)
