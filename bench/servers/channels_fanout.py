"""Django Channels fan-out: consumers in a group, the publisher's text goes out by `group_send`.

`--layer memory` uses `InMemoryChannelLayer` (one process only); `--layer redis --redis URL`
uses channels_redis' `RedisChannelLayer`, so several processes share the group. Both with
their default settings, as a user gets them.
"""

from __future__ import annotations

from typing import Any

import django  # type: ignore[import-untyped]
from django.conf import settings  # type: ignore[import-untyped]

from bench.servers import serve, uvicorn_args

GROUP = "room"


def make_app(layer: str, redis_url: str | None) -> Any:
    if layer == "redis":
        backend: dict[str, Any] = {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url]},
        }
    else:
        backend = {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={"default": backend},
        ASGI_APPLICATION="bench.servers.channels_fanout.application",
    )
    django.setup()

    from channels.generic.websocket import AsyncWebsocketConsumer  # type: ignore[import-untyped]
    from channels.routing import ProtocolTypeRouter, URLRouter  # type: ignore[import-untyped]
    from django.urls import path  # type: ignore[import-untyped]

    class Member(AsyncWebsocketConsumer):  # type: ignore[misc]
        async def connect(self) -> None:
            await self.channel_layer.group_add(GROUP, self.channel_name)
            await self.accept()
            await self.send(text_data="joined")

        async def disconnect(self, code: int) -> None:
            await self.channel_layer.group_discard(GROUP, self.channel_name)

        async def room_message(self, event: dict[str, Any]) -> None:
            await self.send(text_data=event["text"])

    class Publisher(AsyncWebsocketConsumer):  # type: ignore[misc]
        async def receive(self, text_data: str | None = None, bytes_data: Any = None) -> None:
            await self.channel_layer.group_send(GROUP, {"type": "room.message", "text": text_data})

    return ProtocolTypeRouter(
        {
            "websocket": URLRouter(
                [path("member", Member.as_asgi()), path("publish", Publisher.as_asgi())]
            )
        }
    )


if __name__ == "__main__":
    parser = uvicorn_args(__doc__ or "")
    parser.add_argument("--layer", choices=["memory", "redis"], default="memory")
    parser.add_argument("--redis", default=None)
    args = parser.parse_args()
    serve(make_app(args.layer, args.redis), args.port, args.ws)
