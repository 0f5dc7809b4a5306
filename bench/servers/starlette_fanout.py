"""Raw Starlette fan-out: the hand-written baseline, a plain sequential `send_text` loop.

Members connect to `/member` and are told "joined"; every text on `/publish` goes to all
members, one `await` after another (ANCHORS: faster and fairer than a task per member).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bench.servers import serve, uvicorn_args

members: set[WebSocket] = set()


async def member(ws: WebSocket) -> None:
    await ws.accept()
    members.add(ws)
    try:
        await ws.send_text("joined")
        while True:
            await ws.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        members.discard(ws)


async def publish(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            text = await ws.receive_text()
            for m in list(members):
                try:
                    await m.send_text(text)
                except Exception:  # a member that went away must not stop the others
                    members.discard(m)
    except WebSocketDisconnect:
        pass


app = Starlette(routes=[WebSocketRoute("/member", member), WebSocketRoute("/publish", publish)])

if __name__ == "__main__":
    args = uvicorn_args(__doc__ or "").parse_args()
    serve(app, args.port, args.ws)
