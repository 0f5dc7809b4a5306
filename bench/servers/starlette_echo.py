"""Raw Starlette echo: the baseline a hand-written endpoint gets under uvicorn (or granian)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bench.servers import serve, serve_granian, uvicorn_args


async def echo_text(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            await ws.send_text(await ws.receive_text())
    except WebSocketDisconnect:
        pass


async def echo_json(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            await ws.send_json(await ws.receive_json())
    except WebSocketDisconnect:
        pass


app = Starlette(routes=[WebSocketRoute("/", echo_text), WebSocketRoute("/json", echo_json)])

if __name__ == "__main__":
    args = uvicorn_args(__doc__ or "").parse_args()
    if args.server == "granian":
        serve_granian("bench.servers.starlette_echo:app", args.port)
    else:
        serve(app, args.port, args.ws)
