"""Raw aiohttp fan-out: a plain sequential `send_str` loop, as the Starlette one.

Members connect to `/member`, are told "joined" and are kept in a set; every text on
`/publish` goes to all members, one `await` after another. Compression off, uvloop.
"""

from __future__ import annotations

import argparse
import contextlib

import uvloop
from aiohttp import WSMsgType, web

from bench.harness import raise_open_files_limit


def make_app() -> web.Application:
    members: set[web.WebSocketResponse] = set()

    async def member(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        members.add(ws)
        try:
            await ws.send_str("joined")
            async for _ in ws:
                pass
        finally:
            members.discard(ws)
        return ws

    async def publish(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            for m in list(members):
                # A member that went away must not stop the others.
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await m.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/member", member)
    app.router.add_get("/publish", publish)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws", default=None, help="ignored (uniform command line)")
    args = parser.parse_args()
    raise_open_files_limit()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, backlog=4096, access_log=None,
                print=None, loop=uvloop.new_event_loop())  # fmt: skip
