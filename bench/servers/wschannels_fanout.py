"""wschannels fan-out: members join a `Hub` room, the publisher's text goes out by `publish`.

`--hub redis://...` fans out through Redis, so several processes share the room;
`--transport picows` serves the handlers on the picows transport instead of uvicorn,
`--transport websockets` on the `websockets` library's server, `--transport aiohttp` under
aiohttp.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

import wschannels
from bench.harness import raise_open_files_limit
from bench.servers import serve, uvicorn_args
from bench.servers.wschannels_echo import adapter
from wschannels import Done, Receiver, Sender, select

ROOM = "room"


def make_handlers(hub: wschannels.Hub) -> dict[str, Any]:
    @wschannels.messages()
    async def member(sender: Sender[str], done: Done) -> None:
        await hub.join(ROOM, sender)
        await sender.send("joined")
        await select(done)

    @wschannels.messages()
    async def publish(receiver: Receiver[str], done: Done) -> None:
        while True:
            chosen, text, ok = await select(receiver, done)
            if chosen is done or not ok:
                return
            await hub.publish(ROOM, text)

    return {"/member": member, "/publish": publish}


def make_app(hub_url: str | None) -> Any:
    hub = wschannels.Hub(hub_url)
    routes = [WebSocketRoute(path, handler) for path, handler in make_handlers(hub).items()]
    return Starlette(routes=routes, lifespan=hub.lifespan)


async def serve_on_picows(hub_url: str | None, port: int) -> None:
    from wschannels.servers.picows import serve_picows

    async with wschannels.Hub(hub_url) as hub:
        server = await serve_picows(make_handlers(hub), "127.0.0.1", port, backlog=4096)
        await server.wait_closed()


async def serve_on_websockets(hub_url: str | None, port: int) -> None:
    async with wschannels.Hub(hub_url) as hub:
        server = await adapter("serve_websockets")(
            make_handlers(hub), "127.0.0.1", port, backlog=4096
        )
        await server.wait_closed()


def run_aiohttp(hub_url: str | None, port: int) -> None:
    import uvloop
    from aiohttp import web

    hub = wschannels.Hub(hub_url)

    async def hub_running(app: web.Application) -> AsyncIterator[None]:
        async with hub:
            yield

    app = web.Application()
    app.cleanup_ctx.append(hub_running)
    for path, handler in make_handlers(hub).items():
        app.router.add_get(path, adapter("aiohttp_route")(handler))
    adapter("aiohttp_setup")(app)
    web.run_app(app, host="127.0.0.1", port=port, backlog=4096, access_log=None, print=None,
                loop=uvloop.new_event_loop())  # fmt: skip


if __name__ == "__main__":
    parser = uvicorn_args(__doc__ or "")
    parser.add_argument("--hub", default=None, help="Hub URL (default: in this process)")
    parser.add_argument(
        "--transport", choices=["asgi", "picows", "websockets", "aiohttp"], default="asgi"
    )
    args = parser.parse_args()
    if args.transport in ("picows", "websockets"):
        import uvloop

        raise_open_files_limit()
        on = serve_on_picows if args.transport == "picows" else serve_on_websockets
        uvloop.run(on(args.hub, args.port))
    elif args.transport == "aiohttp":
        raise_open_files_limit()
        run_aiohttp(args.hub, args.port)
    else:
        serve(make_app(args.hub), args.port, args.ws)
