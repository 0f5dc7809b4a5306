"""wschannels echo: the same echo as the raw Starlette one, written against the binding.

`--form route` serves Starlette `WebSocketRoute`s under uvicorn: `/` with
`@wschannels.messages()` and `/json` with `@wschannels.json(Msg)`; `--form asgi` serves the
bare `wschannels.asgi(handler)` app of the `messages()` handler on every path; `--form picows`
serves the same two handlers on the picows transport (no ASGI server at all), `--form
websockets` on the websockets library's server and `--form aiohttp` as aiohttp routes.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

import wschannels
from bench.harness import raise_open_files_limit
from bench.servers import serve, uvicorn_args
from wschannels import Done, Receiver, Sender, select


class Msg(msgspec.Struct):
    user: str
    text: str
    seq: int


@wschannels.messages()
async def echo_text(receiver: Receiver[str], sender: Sender[str], done: Done) -> None:
    while True:
        chosen, value, ok = await select(receiver, done)
        if chosen is done or not ok:
            return
        await sender.send(value)


@wschannels.json(Msg)
async def echo_json(receiver: Receiver[Msg], sender: Sender[Msg], done: Done) -> None:
    while True:
        chosen, value, ok = await select(receiver, done)
        if chosen is done or not ok:
            return
        await sender.send(value)


def app_for(form: str) -> Any:
    if form == "asgi":
        return wschannels.asgi(echo_text)
    return Starlette(routes=[WebSocketRoute("/", echo_text), WebSocketRoute("/json", echo_json)])


if __name__ == "__main__":
    parser = uvicorn_args(__doc__ or "")
    parser.add_argument(
        "--form", choices=["route", "asgi", "picows", "websockets", "aiohttp"], default="route"
    )
    args = parser.parse_args()
    routes = {"/": echo_text, "/json": echo_json}
    if args.form == "picows":
        raise_open_files_limit()
        wschannels.run_picows(routes, "127.0.0.1", args.port, backlog=4096)
    elif args.form == "websockets":
        raise_open_files_limit()
        wschannels.run_websockets(routes, "127.0.0.1", args.port, backlog=4096)
    elif args.form == "aiohttp":
        import uvloop
        from aiohttp import web

        raise_open_files_limit()
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_get(path, wschannels.aiohttp_route(handler))
        wschannels.aiohttp_setup(app)
        uvloop.install()
        web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)
    else:
        serve(app_for(args.form), args.port, args.ws)
