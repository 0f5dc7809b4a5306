"""Server apps under test; each module runs as `python -m bench.servers.NAME --port P ...`."""

from __future__ import annotations

import argparse
from typing import Any

from bench.harness import raise_open_files_limit


def uvicorn_args(description: str) -> argparse.ArgumentParser:
    """The command line every uvicorn-served app takes: port and WebSocket implementation."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
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
