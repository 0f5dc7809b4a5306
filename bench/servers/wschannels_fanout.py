"""wschannels fan-out: members join a `Hub` room, the publisher's text goes out by `publish`.

`--hub redis://...` fans out through Redis, so several processes share the room.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

import wschannels
from bench.servers import serve, uvicorn_args
from wschannels import Done, Receiver, Sender, select
from wschannels.hub import Hub

ROOM = "room"


def make_app(hub_url: str | None) -> Any:
    hub = Hub(hub_url)

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

    return Starlette(
        routes=[WebSocketRoute("/member", member), WebSocketRoute("/publish", publish)],
        lifespan=hub.lifespan,
    )


if __name__ == "__main__":
    parser = uvicorn_args(__doc__ or "")
    parser.add_argument("--hub", default=None, help="Hub URL (default: in this process)")
    args = parser.parse_args()
    serve(make_app(args.hub), args.port, args.ws)
