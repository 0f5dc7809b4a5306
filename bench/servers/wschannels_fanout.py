"""wschannels fan-out: members join a `Hub` room, the publisher's text goes out by `publish`.

`--hub redis://...` fans out through Redis, so several processes share the room;
`--transport picows` serves the handlers on the picows transport instead of uvicorn.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

import wschannels
from bench.harness import raise_open_files_limit
from bench.servers import serve, uvicorn_args
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


if __name__ == "__main__":
    parser = uvicorn_args(__doc__ or "")
    parser.add_argument("--hub", default=None, help="Hub URL (default: in this process)")
    parser.add_argument("--transport", choices=["asgi", "picows"], default="asgi")
    args = parser.parse_args()
    if args.transport == "picows":
        import uvloop

        raise_open_files_limit()
        uvloop.run(serve_on_picows(args.hub, args.port))
    else:
        serve(make_app(args.hub), args.port, args.ws)
