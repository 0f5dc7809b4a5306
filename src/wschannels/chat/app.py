"""The chat application: pages, the room socket, and a status endpoint.

Every connection is one handler running one ``select`` loop, as in the Go
original's example. What that example got wrong is fixed here: input is
validated on the server and a bad message gets an error reply instead of a
dropped socket, and fan-out goes through :class:`wschannels.Hub`, whose
delivery policy keeps one slow client from stalling a room.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

import wschannels
from wschannels import Done, Errors, Receiver, Sender

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_ROOM_LENGTH",
    "MAX_TEXT_LENGTH",
    "ChatStats",
    "Message",
    "create_app",
    "name_problem",
    "room_problem",
    "text_problem",
]

logger = logging.getLogger("wschannels.chat")

HERE = Path(__file__).parent

MAX_NAME_LENGTH = 32
MAX_ROOM_LENGTH = 40
MAX_TEXT_LENGTH = 500

_ROOM = re.compile(rf"[\w-]{{1,{MAX_ROOM_LENGTH}}}")


class Message(msgspec.Struct):
    """One frame of the chat protocol, both ways: ``{"typ", "from", "text"}``.

    ``typ`` is "message" (a chat line), "join" / "leave" (someone came or
    went), or "error" (the server refused what the client sent). A client
    only sends "message"; the server fills in ``from`` itself, so nobody can
    speak under another name.
    """

    typ: str
    from_: str = msgspec.field(default="", name="from")
    text: str = ""


def _has_control_characters(text: str, allowed: str = "") -> bool:
    return any(unicodedata.category(c) == "Cc" and c not in allowed for c in text)


def room_problem(room: str) -> str | None:
    """Why ``room`` is not a valid room name, or None if it is."""
    if not _ROOM.fullmatch(room):
        return (
            f"A room name is 1 to {MAX_ROOM_LENGTH} letters, digits, '-' or '_'; got {room[:60]!r}."
        )
    return None


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid display name, or None if it is."""
    if not name.strip():
        return "Please choose a display name."
    if len(name) > MAX_NAME_LENGTH:
        return (
            f"A display name can be at most {MAX_NAME_LENGTH} characters; this one has {len(name)}."
        )
    if name != name.strip() or _has_control_characters(name):
        return "A display name cannot start or end with spaces or contain control characters."
    return None


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent as a chat message, or None if it can."""
    if not text.strip():
        return "An empty message was not sent."
    if len(text) > MAX_TEXT_LENGTH:
        return (
            f"A message can be at most {MAX_TEXT_LENGTH} characters; this one has {len(text)}. "
            "It was not sent."
        )
    if _has_control_characters(text, allowed="\n\t"):
        return "A message cannot contain control characters. It was not sent."
    return None


@dataclass
class ChatStats:
    """What this server process has seen, served as JSON at ``/status``."""

    hub: str
    connections: int = 0
    connections_total: int = 0
    messages_in: int = 0
    messages_out: int = 0
    errors: int = 0
    members: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {
            "hub": self.hub,
            "connections": self.connections,
            "connections_total": self.connections_total,
            "rooms": len(self.members),
            "members": dict(sorted(self.members.items())),
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "errors": self.errors,
        }

    def joined(self, room: str) -> None:
        self.members[room] += 1

    def left(self, room: str) -> None:
        self.members[room] -= 1
        if self.members[room] <= 0:
            del self.members[room]


def _describe(error: Exception) -> str:
    """A sentence for the page about an error the connection reported."""
    if isinstance(error, wschannels.InvalidMessage):
        return f"That message could not be read ({error.reason}); it was not sent."
    if isinstance(error, wschannels.MessageTooBig):
        return "That message is far too big; the connection is being closed."
    return f"Something went wrong on this connection: {error}"


def create_app(
    redis_url: str | None = None, options: wschannels.Options | None = None
) -> Starlette:
    """Build the chat app on a :class:`wschannels.Hub`.

    Args:
        redis_url: ``redis://host:port/db`` to share rooms with other processes
            through Redis; None for the in-process hub.
        options: connection options for the room socket; the defaults allow
            same-origin pages only.
    """
    hub = wschannels.Hub(redis_url)
    stats = ChatStats(hub="redis" if redis_url else "memory")
    templates = Jinja2Templates(directory=HERE / "templates")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with hub:
            yield

    async def index(request: Request) -> Response:
        return templates.TemplateResponse(
            request, "index.html", {"rooms": stats.as_json()["members"], "problem": None}
        )

    async def pick_room(request: Request) -> Response:
        """The start page's form (GET /rooms?name=...): on to the room, or back with why not."""
        room = request.query_params.get("name", "").strip()
        problem = room_problem(room)
        if problem is not None:
            return templates.TemplateResponse(
                request,
                "index.html",
                {"rooms": stats.as_json()["members"], "problem": problem, "room": room},
                status_code=400,
            )
        return RedirectResponse(request.url_for("room_page", name=room), status_code=303)

    async def room_page(request: Request) -> Response:
        room = request.path_params["name"]
        problem = room_problem(room)
        if problem is not None:
            return templates.TemplateResponse(
                request,
                "index.html",
                {"rooms": stats.as_json()["members"], "problem": problem, "room": room},
                status_code=404,
            )
        return templates.TemplateResponse(
            request,
            "room.html",
            {
                "room": room,
                "max_name_length": MAX_NAME_LENGTH,
                "max_text_length": MAX_TEXT_LENGTH,
            },
        )

    async def status(request: Request) -> Response:
        return JSONResponse(stats.as_json())

    async def reply(sender: Sender[Message], message: Message) -> None:
        await sender.send(message)
        stats.messages_out += 1

    async def refuse(sender: Sender[Message], problem: str) -> None:
        """Count a refused input and tell the client why; the socket stays open."""
        stats.errors += 1
        await reply(sender, Message(typ="error", text=problem))

    async def publish(room: str, message: Message, sender: Sender[Message]) -> None:
        await hub.publish(room, message, exclude=sender)
        stats.messages_out += 1

    @wschannels.json(Message, options)
    async def room_socket(
        name: str,
        client: str,
        receiver: Receiver[Message],
        sender: Sender[Message],
        done: Done,
        errors: Errors,
    ) -> None:
        """One member of room ``name``, shown to others as ``client``."""
        stats.connections += 1
        stats.connections_total += 1
        problem = room_problem(name) or name_problem(client)
        joined = False
        try:
            if problem is not None:
                # Refused, but not dropped: the page shows why and asks again.
                logger.info("refused to join room %r as %r: %s", name, client, problem)
                await refuse(sender, problem)
            else:
                await hub.join(name, sender)
                joined = True
                stats.joined(name)
                # Told once it is in: from here on, it gets everything said in the room.
                await reply(sender, Message(typ="join", from_=client, text="joined"))
                await publish(name, Message(typ="join", from_=client, text="joined"), sender)

            cases: list[Any] = [receiver, done, errors]
            while True:
                chosen, value, ok = await wschannels.select(*cases)
                if chosen is done or (chosen is receiver and not ok):
                    return
                if chosen is errors:
                    if not ok:
                        cases.remove(errors)
                        continue
                    logger.warning("room %r, client %r: %s", name, client, value)
                    await refuse(sender, _describe(value))
                    continue
                stats.messages_in += 1
                if not joined:
                    await refuse(sender, problem or "Join the room before sending messages.")
                    continue
                if value.typ != "message":
                    await refuse(sender, f"Unknown message type {value.typ[:40]!r}.")
                    continue
                text_refused = text_problem(value.text)
                if text_refused is not None:
                    await refuse(sender, text_refused)
                    continue
                line = Message(typ="message", from_=client, text=value.text)
                await reply(sender, line)
                await publish(name, line, sender)
        except wschannels.ChannelClosed:
            pass  # the connection ended while we were answering it
        finally:
            stats.connections -= 1
            if joined:
                stats.left(name)
                await hub.leave(name, sender)
                await publish(name, Message(typ="leave", from_=client, text="left"), sender)

    return Starlette(
        routes=[
            Route("/", index, name="index"),
            Route("/rooms", pick_room, name="pick_room"),
            Route("/rooms/{name}", room_page, name="room_page"),
            Route("/status", status, name="status"),
            WebSocketRoute("/sockets/rooms/{name}/{client:path}", room_socket, name="room_socket"),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        lifespan=lifespan,
    )
