"""python-socketio echo (ASGI under uvicorn): event "echo" is emitted back to its sender."""

from __future__ import annotations

from typing import Any

import socketio  # type: ignore[import-untyped]

from bench.servers import serve, uvicorn_args

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")


@sio.on("echo")  # type: ignore[untyped-decorator]
async def echo(sid: str, data: Any) -> None:
    await sio.emit("echo", data, to=sid)


app = socketio.ASGIApp(sio)

if __name__ == "__main__":
    args = uvicorn_args(__doc__ or "").parse_args()
    serve(app, args.port, args.ws)
