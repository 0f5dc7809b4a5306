"""The chat application: pages, the room socket, and a status endpoint.

Every connection is one handler running one ``select`` loop, as in the Go
original's example. What that example got wrong is fixed here: input is
validated on the server and a bad message gets an error reply instead of a
dropped socket, and fan-out goes through :class:`~wschannels.hub.Hub`, whose
delivery policy keeps one slow client from stalling a room.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

import wschannels
from wschannels import Disconnect, Done, Errors, Receiver, Sender
from wschannels.extras import require
from wschannels.hub import BackendUnavailable, CannotRecover, Hub, PresenceEvent

__all__ = [
    "CLOSE_CANNOT_RECOVER",
    "CLOSE_NAME_TAKEN",
    "HISTORY_SIZE",
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
RECENT_LINES = 50  # lines a fresh join gets from history first
HISTORY_SIZE = 1000  # lines each room keeps, for reconnecting pages
HISTORY_TTL = 24 * 3600.0  # seconds a line stays in history

CLOSE_NAME_TAKEN = 4001  # the display name is already in the room
CLOSE_CANNOT_RECOVER = 4002  # the lines after ?since= are gone: reload

_ROOM = re.compile(rf"[\w-]{{1,{MAX_ROOM_LENGTH}}}")


class Message(msgspec.Struct, omit_defaults=True):
    """One frame of the chat protocol, both ways: ``{"typ", "from", "text"}``.

    ``typ`` is "message" (a chat line), "join" / "leave" (someone came or
    went), "members" (everyone in the room now, in ``members``), "error" (the
    server refused what the client sent), or "reset" (the lines missed since
    ``?since=`` cannot be recovered: reload). A client only sends "message";
    the server fills in ``from`` itself, so nobody can speak under another
    name. Every chat line the server sends carries ``pos``, its position in
    the room's history: a socket opened with ``?since=POS`` gets exactly the
    lines after it before live ones.
    """

    typ: str
    from_: str = msgspec.field(default="", name="from")
    text: str = ""
    members: list[str] | None = None


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
    """What this server's room sockets have seen; ``/status`` adds the hub's counters."""

    connections: int = 0
    connections_total: int = 0
    messages_in: int = 0
    replies: int = 0
    errors: int = 0


def _describe(error: Exception) -> str:
    """A sentence for the page about an error the connection reported."""
    if isinstance(error, wschannels.InvalidMessage):
        return f"That message could not be read ({error.reason}); it was not sent."
    if isinstance(error, wschannels.MessageTooBig):
        return "That message is far too big; the connection is being closed."
    return f"Something went wrong on this connection: {error}"


def create_app(
    hub_url: str | None = None,
    options: wschannels.Options | None = None,
    *,
    heartbeat_interval: float = 5.0,
) -> Starlette:
    """Build the chat app on a :class:`~wschannels.hub.Hub`, started and stopped with the app.

    Args:
        hub_url: ``redis://host:port/db`` or ``nats://host:port`` to share rooms
            with other processes; None for the in-process hub.
        options: connection options for the room socket; the defaults allow
            same-origin pages (and clients that send no Origin, which are not browsers).
        heartbeat_interval: the hub's heartbeat: a crashed server's people
            leave the member lists within three.
    """
    hub = Hub(
        hub_url,
        history_size=HISTORY_SIZE,
        history_ttl=HISTORY_TTL,
        heartbeat_interval=heartbeat_interval,
    )
    stats = ChatStats()
    require("jinja2", "chat", "the chat demo")
    from starlette.templating import Jinja2Templates

    templates = Jinja2Templates(directory=HERE / "templates")

    def rooms_here() -> dict[str, int]:
        """Rooms with members on this server, and how many."""
        return {room: hub.local_count(room) for room in sorted(hub.rooms())}

    def index_page(request: Request, room: str = "", problem: str | None = None) -> Response:
        context = {"rooms": rooms_here(), "room": room, "problem": problem}
        status_code = 200 if problem is None else 400
        return templates.TemplateResponse(request, "index.html", context, status_code=status_code)

    async def index(request: Request) -> Response:
        return index_page(request)

    async def pick_room(request: Request) -> Response:
        """The start page's form (GET /rooms?name=...): on to the room, or back with why not."""
        room = request.query_params.get("name", "").strip()
        problem = room_problem(room)
        if problem is not None:
            return index_page(request, room, problem)
        return RedirectResponse(request.url_for("room_page", name=room).path, status_code=303)

    async def room_page(request: Request) -> Response:
        room = request.path_params["name"]
        problem = room_problem(room)
        if problem is not None:
            return index_page(request, room, problem)
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
        hub_statistics = hub.statistics()
        rooms = rooms_here()
        return JSONResponse(
            {
                "hub": hub_statistics.backend,
                "connections": stats.connections,
                "connections_total": stats.connections_total,
                "rooms": len(rooms),
                "members": rooms,
                "messages_in": stats.messages_in,
                # Own replies, plus everything the hub handed to members here.
                "messages_out": stats.replies + hub_statistics.delivered,
                "errors": stats.errors,
                "hub_statistics": hub_statistics._asdict(),
            }
        )

    async def reply(sender: Sender[Message], message: Message) -> None:
        await sender.send(message)
        stats.replies += 1

    async def refuse(sender: Sender[Message], problem: str) -> None:
        """Count a refused input and tell the client why; the socket stays open."""
        stats.errors += 1
        await reply(sender, Message(typ="error", text=problem))

    async def publish(room: str, message: Message, sender: Sender[Message]) -> None:
        """Send a chat line to everyone in the room, its author too (it comes back with ``pos``)."""
        try:
            await hub.publish(room, message)
        except BackendUnavailable as error:
            logger.warning("%s", error)
            await refuse(
                sender,
                "The chat's message broker did not take that message, so nobody got it. "
                "Try again in a moment.",
            )

    async def name_taken(room: str, client: str, page: str) -> bool:
        """Whether someone else (another page) is in ``room`` as ``client``."""
        try:
            present = await hub.presence(room)
        except BackendUnavailable:
            return False  # cannot tell: let them in rather than lock everyone out
        return any(
            isinstance(info, dict) and info.get("name") == client and info.get("page") != page
            for info in present
        )

    async def enter(
        room: str, client: str, page: str, since: str | None, sender: Sender[Message]
    ) -> str | None:
        """Join ``room``; None once in, else the refusal already sent (and the close code)."""
        if await name_taken(room, client, page):
            await refuse(
                sender, f"Someone is already in # {room} as {client!r}. Please pick another name."
            )
            return "name taken"
        # Told it is in first: then the history, then everything said in the room.
        await reply(sender, Message(typ="join", from_=client, text="joined"))
        info = {"name": client, "page": page}
        try:
            if since:
                await hub.join(room, sender, info=info, since=since)
            else:
                await hub.join(room, sender, info=info, last=RECENT_LINES)
        except (CannotRecover, ValueError) as error:
            logger.info("room %r, client %r: %s", room, client, error)
            await reply(
                sender,
                Message(
                    typ="reset",
                    text="Some messages of this room could not be recovered; reloading.",
                ),
            )
            return "cannot recover"
        except BackendUnavailable as error:
            logger.warning("room %r, client %r: %s", room, client, error)
            await refuse(sender, "The chat's message broker is unreachable; try again soon.")
            return "unavailable"
        return None

    async def tell_members(
        sender: Sender[Message], event: PresenceEvent, before: set[str] | None, client: str
    ) -> set[str]:
        """Send the member list, and who came and went since ``before``."""
        names = {str(info.get("name")) for info in event.members if isinstance(info, dict)}
        if before is not None:
            for name in sorted(names - before):
                if name != client:
                    await reply(sender, Message(typ="join", from_=name, text="joined"))
            for name in sorted(before - names):
                await reply(sender, Message(typ="leave", from_=name, text="left"))
        await reply(sender, Message(typ="members", members=sorted(names)))
        return names

    @wschannels.json(Message, options)
    async def room_socket(
        name: str,
        client: str,
        websocket: WebSocket,
        receiver: Receiver[Message],
        sender: Sender[Message],
        done: Done,
        disconnect: Disconnect,
        errors: Errors,
    ) -> None:
        """One member of room ``name``, shown to others as ``client``."""
        stats.connections += 1
        stats.connections_total += 1
        problem = room_problem(name) or name_problem(client)
        page = websocket.query_params.get("page", "")[:64]
        since = websocket.query_params.get("since") or None
        joined = False
        try:
            if problem is not None:
                # Refused, but not dropped: the page shows why and asks again.
                logger.info("refused to join room %r as %r: %s", name, client, problem)
                await refuse(sender, problem)
            else:
                refused = await enter(name, client, page, since, sender)
                if refused == "name taken":
                    await disconnect.send(CLOSE_NAME_TAKEN)
                    return
                if refused == "cannot recover":
                    await disconnect.send(CLOSE_CANNOT_RECOVER)
                    return
                joined = refused is None
            with hub.watch(name) as changes:
                await serve(name, client, joined, problem, receiver, sender, done, errors, changes)
        except wschannels.ChannelClosed:
            pass  # the connection ended while we were answering it
        finally:
            stats.connections -= 1
            if joined:
                try:
                    await hub.leave(name, sender)
                except (BackendUnavailable, RuntimeError) as error:
                    # RuntimeError: the server is shutting down and the hub has stopped.
                    logger.info("could not take %r out of room %r: %s", client, name, error)

    async def serve(
        name: str,
        client: str,
        joined: bool,
        problem: str | None,
        receiver: Receiver[Message],
        sender: Sender[Message],
        done: Done,
        errors: Errors,
        changes: Any,
    ) -> None:
        """The connection's one select loop: the client's lines, errors, who is in the room."""
        names: set[str] | None = None
        cases: list[Any] = [receiver, done, errors]
        if joined:
            cases.append(changes)
        while True:
            chosen, value, ok = await wschannels.select(*cases)
            if chosen is done:
                return
            if chosen is changes:  # a watch is a channel the hub closes when it stops
                if not ok:
                    cases.remove(changes)
                else:
                    names = await tell_members(sender, value, names, client)
                continue
            if chosen is errors:
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
            await publish(name, Message(typ="message", from_=client, text=value.text), sender)

    return Starlette(
        routes=[
            Route("/", index, name="index"),
            Route("/rooms", pick_room, name="pick_room"),
            Route("/rooms/{name}", room_page, name="room_page"),
            Route("/status", status, name="status"),
            WebSocketRoute("/sockets/rooms/{name}/{client:path}", room_socket, name="room_socket"),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        lifespan=hub.lifespan,
    )
