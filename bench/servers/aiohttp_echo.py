"""Raw aiohttp echo server (a `WebSocketResponse` handler): the baseline for wschannels on it."""

from __future__ import annotations

import argparse

import uvloop
from aiohttp import WSMsgType, web

from bench.harness import raise_open_files_limit


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    async for message in ws:
        if message.type is WSMsgType.TEXT:
            await ws.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    return ws


async def echo_json(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    async for message in ws:
        if message.type is WSMsgType.TEXT:
            await ws.send_json(message.json())
    return ws


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws", default=None, help="ignored (uniform command line)")
    port = parser.parse_args().port
    raise_open_files_limit()
    app = web.Application()
    app.router.add_get("/", echo)
    app.router.add_get("/json", echo_json)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
