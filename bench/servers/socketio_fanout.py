"""python-socketio fan-out: "join" enters the room, "publish" is `emit("msg", room=...)`.

With `--redis URL` the server uses `AsyncRedisManager`, so an emit in one process reaches
the room's members in every process.
"""

from __future__ import annotations

from typing import Any

import socketio  # type: ignore[import-untyped]

from bench.servers import serve, uvicorn_args

ROOM = "room"


def make_app(redis_url: str | None) -> Any:
    manager = socketio.AsyncRedisManager(redis_url) if redis_url else None
    sio = socketio.AsyncServer(
        async_mode="asgi", cors_allowed_origins="*", client_manager=manager
    )

    @sio.on("join")  # type: ignore[untyped-decorator]
    async def join(sid: str, data: Any = None) -> None:
        await sio.enter_room(sid, ROOM)
        await sio.emit("joined", to=sid)

    @sio.on("publish")  # type: ignore[untyped-decorator]
    async def publish(sid: str, data: Any) -> None:
        await sio.emit("msg", data, room=ROOM)

    return socketio.ASGIApp(sio)


if __name__ == "__main__":
    parser = uvicorn_args(__doc__ or "")
    parser.add_argument("--redis", default=None)
    args = parser.parse_args()
    serve(make_app(args.redis), args.port, args.ws)
