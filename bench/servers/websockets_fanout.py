"""Raw fan-out on the `websockets` library's server (or picows' compatible one): `broadcast()`.

Members connect to `/member`, are told "joined" and are added to a set; every text on
`/publish` goes to all of them with one `broadcast(members, text)` call, which writes each
frame without waiting (the library's own fan-out primitive). Compression off, uvloop.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvloop

from bench.harness import raise_open_files_limit
from bench.servers.websockets_echo import library


def make_handler(ws_lib: Any) -> Any:
    members: set[Any] = set()
    closed = ws_lib.ConnectionClosed

    async def handler(ws: Any) -> None:
        try:
            if ws.request.path == "/member":
                members.add(ws)
                try:
                    await ws.send("joined")
                    await ws.wait_closed()
                finally:
                    members.discard(ws)
            elif ws.request.path == "/publish":
                async for text in ws:
                    ws_lib.broadcast(members, text)
        except closed:
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
