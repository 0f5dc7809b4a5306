"""Raw echo on the `websockets` library's asyncio server, or on picows' compatible one.

`--impl websockets` is `websockets.asyncio.server.serve`; `--impl picows` is
`picows.websockets.serve`, picows' reimplementation of the same API over its C frame
parser. One handler routes by path: `/` echoes each message, `/json` decodes the JSON text
and encodes it again. Compression off (both default to permessage-deflate), uvloop.
"""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any

import uvloop

from bench.harness import raise_open_files_limit


def library(impl: str) -> Any:
    """The `websockets`-shaped module: `websockets` itself or `picows.websockets`."""
    return importlib.import_module("picows.websockets" if impl == "picows" else "websockets")


def make_handler(ws_lib: Any) -> Any:
    closed = ws_lib.ConnectionClosed

    async def handler(ws: Any) -> None:
        try:
            if ws.request.path == "/json":
                async for message in ws:
                    await ws.send(json.dumps(json.loads(message), separators=(",", ":")))
            else:
                async for message in ws:
                    await ws.send(message)
        except closed:  # the load generator drops its connections without a close frame
            pass

    return handler


async def main(impl: str, port: int) -> None:
    ws_lib = library(impl)
    async with ws_lib.serve(
        make_handler(ws_lib), "127.0.0.1", port, compression=None, backlog=4096
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--impl", choices=["websockets", "picows"], default="websockets")
    parser.add_argument("--ws", default=None, help="ignored (uniform command line)")
    args = parser.parse_args()
    raise_open_files_limit()
    uvloop.run(main(args.impl, args.port))
