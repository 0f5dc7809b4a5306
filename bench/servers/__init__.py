"""Server apps under test; each module runs as `python -m bench.servers.NAME --port P ...`."""

from __future__ import annotations

import argparse
from typing import Any

from bench.harness import raise_open_files_limit


def uvicorn_args(description: str) -> argparse.ArgumentParser:
    """The command line every ASGI app takes: port, server and uvicorn's WebSocket protocol."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--server",
        default="uvicorn",
        choices=["uvicorn", "granian"],
        help="the ASGI server (granian ignores --ws: its WebSocket protocol is its own, in Rust)",
    )
    parser.add_argument(
        "--ws",
        default="websockets-sansio",
        choices=["websockets-sansio", "websockets", "wsproto"],
        help="uvicorn's WebSocket protocol implementation",
    )
    return parser


def serve(app: Any, port: int, ws: str) -> None:
    """Run `app` under uvicorn the same way for every contender.

    One worker, uvloop, httptools, compression off, warnings only, lifespan on so that apps
    with a startup step (a hub, a Redis manager) get it.
    """
    import uvicorn

    raise_open_files_limit()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        ws=ws,
        ws_per_message_deflate=False,
        log_level="warning",
        access_log=False,
        backlog=4096,
    )


def serve_granian(target: str, port: int) -> None:
    """Run the ASGI app at `target` ("module:attribute") under granian, as uvicorn is run.

    One worker process with one runtime thread (granian's single-threaded runtime), uvloop,
    warnings only, backlog 4,096. Granian imports the app in its worker process, so it takes
    the app's import path rather than the object; its WebSocket protocol (in Rust) never
    negotiates compression.
    """
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels

    raise_open_files_limit()  # the worker inherits the raised limit
    Granian(
        target,
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        workers=1,
        runtime_threads=1,
        loop=Loops.uvloop,
        websockets=True,
        backlog=4096,
        log_level=LogLevels.warning,
    ).serve()
