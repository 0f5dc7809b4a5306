"""A small app on a Hub, for the hub's tests: members in rooms, HTTP to publish and count.

The tests serve it in their own process (``create_app(hub)``, the test owns the
hub), or run it as a server process of its own on a shared Redis::

    python tests/hub/hubapp.py PORT REDIS_URL

Routes:
    ws   /members/{client}/{rooms}  a ``json(Note)`` member of the comma-separated rooms;
                                    it answers "joined", then takes commands (``Note.action``)
    ws   /plain/{client}/{rooms}    a ``messages()`` member; it answers "joined"
    ws   /since/{client}/{room}/{position}  a ``json(Note)`` member joining with a position
                                    ("-": none; "last=N": the last N messages); it answers
                                    "joined", or "cannot_recover" and closes
    GET  /presence/{room}           the infos of the room's members
    POST /publish/{room}            {"texts": [...]} published one after another as Notes
                                    (or as str with "plain": true); 503 on BackendUnavailable
    GET  /count/{room}              {"local": ..., "cluster": ...}
    GET  /stats                     the hub's statistics, the errors members saw, tasks
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections import defaultdict
from typing import Any

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

import wschannels
from wschannels import Done, Errors, Receiver, Sender
from wschannels.hub import BackendUnavailable, CannotRecover, Hub


class Note(msgspec.Struct):
    """A message both ways; from a client, ``action`` says what to do with it."""

    text: str
    room: str = ""
    action: str = "publish"  # publish | publish_others | leave | join
    pad: str = ""


def create_app(hub: Hub, *, lifespan: bool = False) -> Starlette:
    """The app on ``hub``; with ``lifespan``, the app starts and stops the hub itself."""
    seen_errors: dict[str, list[str]] = defaultdict(list)

    async def serve_member(
        client: str, sender: Any, receiver: Any, done: Done, errors: Errors
    ) -> None:
        cases: list[Any] = [done, errors] if receiver is None else [receiver, done, errors]
        while True:
            chosen, value, ok = await wschannels.select(*cases)
            if chosen is done:
                return
            if chosen is errors:
                if not ok:
                    cases.remove(errors)
                else:
                    seen_errors[client].append(f"{type(value).__name__}: {value}")
                continue
            if not ok:
                cases.remove(receiver)
                continue
            note: Note = value
            if note.action == "leave":
                await hub.leave(note.room, sender)
                await sender.send(Note(text="left", room=note.room, action="ack"))
            elif note.action == "join":
                await hub.join(note.room, sender)
                await sender.send(Note(text="joined", room=note.room, action="ack"))
            else:
                exclude = sender if note.action == "publish_others" else None
                try:
                    await hub.publish(note.room, Note(text=note.text, room=note.room), exclude)
                except BackendUnavailable as error:
                    await sender.send(Note(text=str(error), room=note.room, action="error"))

    @wschannels.json(Note)
    async def json_member(
        client: str,
        rooms: str,
        receiver: Receiver[Note],
        sender: Sender[Note],
        done: Done,
        errors: Errors,
    ) -> None:
        for room in rooms.split(","):
            await hub.join(room, sender, info={"name": client})
        await sender.send(Note(text="joined", action="ack"))
        await serve_member(client, sender, receiver, done, errors)

    @wschannels.json(Note)
    async def recovering_member(
        client: str,
        room: str,
        position: str,
        receiver: Receiver[Note],
        sender: Sender[Note],
        done: Done,
        errors: Errors,
    ) -> None:
        since = None if position.startswith(("-", "last=")) else position
        last = int(position[5:]) if position.startswith("last=") else 0
        try:
            await hub.join(room, sender, info={"name": client}, since=since, last=last)
        except CannotRecover as error:
            await sender.send(Note(text=str(error), room=error.reason, action="cannot_recover"))
            return
        await sender.send(Note(text="joined", action="ack"))
        await serve_member(client, sender, receiver, done, errors)

    @wschannels.messages()
    async def plain_member(
        client: str, rooms: str, sender: Sender[str], done: Done, errors: Errors
    ) -> None:
        for room in rooms.split(","):
            await hub.join(room, sender)
        await sender.send("joined")
        await serve_member(client, sender, None, done, errors)

    async def publish(request: Request) -> Response:
        room = request.path_params["room"]
        body = await request.json()
        positions = []
        try:
            for text in body["texts"]:
                message: Any = text if body.get("plain") else Note(text=text, room=room)
                position = await hub.publish(room, message)
                positions.append(None if position is None else str(position))
        except BackendUnavailable as error:
            return JSONResponse({"error": f"BackendUnavailable: {error}"}, status_code=503)
        return JSONResponse({"published": len(body["texts"]), "positions": positions})

    async def presence(request: Request) -> Response:
        try:
            infos = await hub.presence(request.path_params["room"])
        except BackendUnavailable as error:
            return JSONResponse({"error": f"BackendUnavailable: {error}"}, status_code=503)
        return JSONResponse(sorted(info["name"] for info in infos))

    async def count(request: Request) -> Response:
        room = request.path_params["room"]
        try:
            cluster = await hub.count(room)
        except BackendUnavailable as error:
            return JSONResponse({"error": f"BackendUnavailable: {error}"}, status_code=503)
        return JSONResponse({"local": hub.local_count(room), "cluster": cluster})

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                **hub.statistics()._asdict(),
                "errors": seen_errors,
                "tasks": len(asyncio.all_tasks()),
                "joined": len(hub._joined),
            }
        )

    app = Starlette(
        routes=[
            WebSocketRoute("/members/{client}/{rooms}", json_member),
            WebSocketRoute("/plain/{client}/{rooms}", plain_member),
            WebSocketRoute("/since/{client}/{room}/{position}", recovering_member),
            Route("/presence/{room}", presence),
            Route("/publish/{room}", publish, methods=["POST"]),
            Route("/count/{room}", count),
            Route("/stats", stats),
        ],
        lifespan=hub.lifespan if lifespan else None,
    )
    app.state.seen_errors = seen_errors
    return app


def main() -> None:
    port, url = int(sys.argv[1]), sys.argv[2]
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    hub = Hub(
        url,
        heartbeat_interval=float(os.environ.get("HUB_HEARTBEAT", "5")),
        backend_timeout=float(os.environ.get("HUB_TIMEOUT", "2")),
        history_size=int(os.environ.get("HUB_HISTORY", "0")),
        key_prefix=os.environ.get("HUB_PREFIX", "wschannels"),
    )
    app = create_app(hub, lifespan=True)
    uvicorn.run(app, host="127.0.0.1", port=port, ws="websockets-sansio", log_level="warning")


if __name__ == "__main__":
    main()
