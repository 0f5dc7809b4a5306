"""wschannels echo: the same echo as the raw servers' ones, written against the binding.

`--form route` serves Starlette `WebSocketRoute`s under uvicorn (or granian, `--server
granian`): `/` with `@wschannels.messages()` and `/json` with `@wschannels.json(Msg)`;
`--form asgi` serves the bare `wschannels.asgi(handler)` app of the `messages()` handler on
every path; `--form picows`, `--form websockets` and `--form aiohttp` serve the same two
handlers on the picows transport, on the `websockets` library's server and under aiohttp
(no ASGI server at all).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

import wschannels
from bench.harness import raise_open_files_limit
from bench.servers import serve, serve_granian, uvicorn_args
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


def adapter(name: str) -> Callable[..., Any]:
    """`wschannels.<name>`, a server adapter that newer versions have (`aiohttp_route`,
    `run_websockets`); the suite runs a form only where its adapter imports."""
    found: Callable[..., Any] = getattr(wschannels, name)
    return found


ROUTES: dict[str, Any] = {"/": echo_text, "/json": echo_json}

# Module level, so that granian's worker process can import it by name.
route_app = Starlette(routes=[WebSocketRoute(path, h) for path, h in ROUTES.items()])


def run_aiohttp(port: int) -> None:
    """The two handlers as aiohttp routes (`wschannels.aiohttp_route`), under `web.run_app`."""
    import uvloop
    from aiohttp import web

    app = web.Application()
    for path, handler in ROUTES.items():
        app.router.add_get(path, adapter("aiohttp_route")(handler))
    adapter("aiohttp_setup")(app)
    web.run_app(app, host="127.0.0.1", port=port, backlog=4096, access_log=None, print=None,
                loop=uvloop.new_event_loop())  # fmt: skip


if __name__ == "__main__":
    parser = uvicorn_args(__doc__ or "")
    parser.add_argument(
        "--form", choices=["route", "asgi", "picows", "websockets", "aiohttp"], default="route"
    )
    args = parser.parse_args()
    if args.form == "picows":
        from wschannels.servers.picows import run_picows

        raise_open_files_limit()
        run_picows(ROUTES, "127.0.0.1", args.port, backlog=4096)
    elif args.form == "websockets":
        raise_open_files_limit()
        adapter("run_websockets")(ROUTES, "127.0.0.1", args.port, backlog=4096)
    elif args.form == "aiohttp":
        raise_open_files_limit()
        run_aiohttp(args.port)
    elif args.form == "asgi":
        serve(wschannels.asgi(echo_text), args.port, args.ws)
    elif args.server == "granian":
        serve_granian("bench.servers.wschannels_echo:route_app", args.port)
    else:
        serve(route_app, args.port, args.ws)
