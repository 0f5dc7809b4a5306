"""Raw `websockets` echo server (its asyncio `serve`): the baseline for wschannels on it."""

from __future__ import annotations

import argparse
import json

import uvloop
from websockets.asyncio.server import ServerConnection, serve

from bench.harness import raise_open_files_limit


async def echo(ws: ServerConnection) -> None:
    json_path = ws.request is not None and ws.request.path == "/json"
    async for message in ws:
        await ws.send(json.dumps(json.loads(message)) if json_path else message)


async def main(port: int) -> None:
    async with serve(echo, "127.0.0.1", port, compression=None, backlog=4096) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws", default=None, help="ignored (uniform command line)")
    raise_open_files_limit()
    uvloop.run(main(parser.parse_args().port))
