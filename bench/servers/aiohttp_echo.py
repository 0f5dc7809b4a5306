"""Raw aiohttp echo: `WebSocketResponse` handlers as the aiohttp docs write them.

`/` echoes each text or binary message, `/json` answers `send_json(msg.json())`.
Compression off, uvloop, access log off.
"""

from __future__ import annotations

import argparse

import uvloop
from aiohttp import WSMsgType, web

from bench.harness import raise_open_files_limit


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def echo_json(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_json(msg.json())
    return ws


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", echo)
    app.router.add_get("/json", echo_json)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws", default=None, help="ignored (uniform command line)")
    args = parser.parse_args()
    raise_open_files_limit()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, backlog=4096, access_log=None,
                print=None, loop=uvloop.new_event_loop())  # fmt: skip
