"""A decorated handler under FastAPI, Starlette and bare ASGI, and what decoration checks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Query, WebSocket
from starlette.applications import Starlette
from starlette.routing import Mount, WebSocketRoute
from websockets.asyncio.client import connect
from websockets.typing import Origin

import wschannels
from tests.conftest import Server, serve
from wschannels import Disconnect, Done, Errors, Receiver, Sender, select

WAIT = 10.0


@dataclass
class Message:
    text: str


@dataclass
class Other:
    number: int


def client(server: Server, path: str, **settings: Any) -> connect:
    return connect(
        server.ws + path,
        origin=Origin(server.origin),
        compression=None,
        open_timeout=WAIT,
        **settings,
    )


def user_agent(websocket: WebSocket) -> str:
    """A FastAPI dependency that reads the handshake."""
    return websocket.headers.get("user-agent", "")


# -- FastAPI ----------------------------------------------------------------------------


async def test_fastapi_resolves_path_query_dependency_and_websocket_parameters() -> None:
    seen: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    app = FastAPI()

    @app.websocket("/sockets/rooms/{name}/{client}")
    @wschannels.json(Message)
    async def room(
        name: str,
        client: str,
        websocket: WebSocket,
        receiver: Receiver[Message],
        sender: Sender[Message],
        done: Done,
        disconnect: Disconnect,
        errors: Errors,
        agent: str = Depends(user_agent),
        page: int = 1,
    ) -> None:
        seen.put_nowait(
            {
                "name": name,
                "client": client,
                "path_params": websocket.path_params,
                "agent": agent,
                "page": page,
            }
        )
        while True:
            chosen, message, _ = await select(receiver, done)
            if chosen is done:
                return
            await sender.send(Message(f"{name}/{client}: {message.text}"))

    path = "/sockets/rooms/lobby/ann?page=3"
    async with serve(app) as server, client(server, path, user_agent_header="tester/1") as ws:
        await ws.send('{"text": "hello"}')
        echo = await asyncio.wait_for(ws.recv(), WAIT)
        parameters = await asyncio.wait_for(seen.get(), WAIT)

    assert echo == '{"text":"lobby/ann: hello"}'
    assert parameters == {
        "name": "lobby",
        "client": "ann",
        "path_params": {"name": "lobby", "client": "ann"},
        "agent": "tester/1",
        "page": 3,
    }


async def test_fastapi_resolves_annotated_dependencies_and_query_parameters() -> None:
    seen: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    app = FastAPI()

    @app.websocket("/rooms/{name}")
    @wschannels.messages()
    async def room(
        name: str,
        sender: Sender[str],
        agent: Annotated[str, Depends(user_agent)],
        page: Annotated[int, Query(ge=1)] = 1,
    ) -> None:
        seen.put_nowait((agent, page))
        await sender.send(name)

    async with serve(app) as server, client(server, "/rooms/lobby?page=2") as ws:
        greeting = await asyncio.wait_for(ws.recv(), WAIT)
        agent, page = await asyncio.wait_for(seen.get(), WAIT)

    assert greeting == "lobby"
    assert agent.startswith("Python/")  # the websockets client's default User-Agent
    assert page == 2


# -- Starlette --------------------------------------------------------------------------


async def test_starlette_websocket_route_injects_path_parameters_by_name() -> None:
    @wschannels.messages()
    async def room(number: int, client: str, sender: Sender[str]) -> None:
        await sender.send(f"{client} in room {number} ({type(number).__name__})")

    app = Starlette(routes=[WebSocketRoute("/rooms/{number:int}/{client}", room)])

    async with serve(app) as server, client(server, "/rooms/7/ann") as ws:
        greeting = await asyncio.wait_for(ws.recv(), WAIT)

    assert greeting == "ann in room 7 (int)"


async def test_starlette_websocket_route_passes_the_websocket_when_asked() -> None:
    @wschannels.messages()
    async def room(socket: WebSocket, sender: Sender[str]) -> None:
        await sender.send(socket.url.path)

    app = Starlette(routes=[WebSocketRoute("/here", room)])

    async with serve(app) as server, client(server, "/here") as ws:
        assert await asyncio.wait_for(ws.recv(), WAIT) == "/here"


@wschannels.messages()
async def named_greeter(sender: Sender[str], name: str = "nobody") -> None:
    await sender.send(f"hello {name}")


async def test_asgi_app_mounted_in_starlette_takes_the_mounts_path_parameters() -> None:
    app = Starlette(routes=[Mount("/greet/{name}", app=wschannels.asgi(named_greeter))])

    async with serve(app) as server, client(server, "/greet/ann/") as ws:
        assert await asyncio.wait_for(ws.recv(), WAIT) == "hello ann"


async def test_asgi_app_mounted_in_starlette_refuses_plain_http() -> None:
    app = Starlette(routes=[Mount("/greet/{name}", app=wschannels.asgi(named_greeter))])

    async with serve(app) as server, httpx.AsyncClient(timeout=WAIT) as http:
        get = await http.get(server.http + "/greet/ann/")
        post = await http.post(server.http + "/greet/ann/")

    assert get.status_code == 400
    assert post.status_code == 405


async def test_asgi_app_served_alone_uses_the_parameters_defaults() -> None:
    async with serve(wschannels.asgi(named_greeter)) as server, client(server, "/any/path") as ws:
        assert await asyncio.wait_for(ws.recv(), WAIT) == "hello nobody"


async def test_a_decorated_handler_can_be_served_without_wrapping_it_in_asgi() -> None:
    async with serve(named_greeter) as server, client(server, "/") as ws:
        assert await asyncio.wait_for(ws.recv(), WAIT) == "hello nobody"


# -- checked when decorated -------------------------------------------------------------


def test_asgi_rejects_a_handler_with_a_parameter_it_cannot_supply() -> None:
    @wschannels.messages()
    async def room(name: str, sender: Sender[str]) -> None:
        await sender.send(name)

    with pytest.raises(TypeError, match="'name'"):
        wschannels.asgi(room)


def test_asgi_rejects_a_handler_that_was_not_decorated() -> None:
    async def room(sender: Sender[str]) -> None:
        await sender.send("hi")

    with pytest.raises(TypeError, match="not a wschannels handler"):
        wschannels.asgi(room)


def test_decorating_a_function_that_is_not_async_fails() -> None:
    def room(sender: Sender[str]) -> None:
        pass

    with pytest.raises(TypeError, match="async def"):
        wschannels.messages()(room)  # type: ignore[type-var]


def test_json_rejects_a_receiver_of_another_model() -> None:
    with pytest.raises(TypeError, match=r"'receiver'.*json\(\).*Message"):

        @wschannels.json(Message)
        async def room(receiver: Receiver[Other]) -> None:
            pass


def test_messages_rejects_a_receiver_of_bytes() -> None:
    with pytest.raises(TypeError, match=r"'receiver'.*messages\(\).*str"):

        @wschannels.messages()
        async def room(receiver: Receiver[bytes]) -> None:
            pass


def test_bytes_messages_rejects_a_sender_of_str() -> None:
    with pytest.raises(TypeError, match=r"'sender'.*bytes_messages\(\).*bytes"):

        @wschannels.bytes_messages()
        async def room(sender: Sender[str]) -> None:
            pass


def test_raw_rejects_a_receiver_of_only_str() -> None:
    with pytest.raises(TypeError, match=r"'receiver'.*raw\(\)"):

        @wschannels.raw()
        async def room(receiver: Receiver[str]) -> None:
            pass


def test_a_mismatch_message_names_the_item_type_the_handler_declared() -> None:
    with pytest.raises(TypeError, match=r"Receiver\[Other\]"):

        @wschannels.json(Message)
        async def room(receiver: Receiver[Other]) -> None:
            pass


def test_matching_and_any_views_are_accepted() -> None:
    @wschannels.json(Message)
    async def typed(receiver: Receiver[Message], sender: Sender[Message]) -> None:
        pass

    @wschannels.messages()
    async def untyped(receiver: Receiver[Any], sender: Sender[Any]) -> None:
        pass

    @wschannels.raw()
    async def both(receiver: Receiver[str | bytes], sender: Sender[str | bytes]) -> None:
        pass


def test_a_bare_view_is_refused_at_decoration_naming_the_parameter() -> None:
    with pytest.raises(TypeError, match=r"'sender' is a bare Sender.*Sender\[str\]"):

        @wschannels.messages()
        async def untyped(receiver: Receiver[str], sender: Sender) -> None:  # type: ignore[type-arg]
            pass


def test_a_parameter_without_annotation_is_refused_at_decoration_naming_it() -> None:
    with pytest.raises(TypeError, match=r"parameter 'name' has no annotation"):

        @wschannels.messages()
        async def room(name, receiver: Receiver[str]) -> None:  # type: ignore[no-untyped-def]
            pass


# -- raw() --------------------------------------------------------------------------------


async def test_raw_keeps_the_frame_type_both_ways() -> None:
    seen: asyncio.Queue[type] = asyncio.Queue()

    @wschannels.raw()
    async def echo(
        receiver: Receiver[str | bytes], sender: Sender[str | bytes], done: Done
    ) -> None:
        while True:
            chosen, frame, _ = await select(receiver, done)
            if chosen is done:
                return
            seen.put_nowait(type(frame))
            await sender.send(frame)

    async with serve(echo) as server, client(server, "/") as ws:
        await ws.send("text")
        text_echo = await asyncio.wait_for(ws.recv(), WAIT)
        await ws.send(b"\x00\xffbinary")
        binary_echo = await asyncio.wait_for(ws.recv(), WAIT)
        types = [await asyncio.wait_for(seen.get(), WAIT) for _ in range(2)]

    assert types == [str, bytes]
    assert text_echo == "text"  # a str: it came as a text frame
    assert binary_echo == b"\x00\xffbinary"  # bytes: a binary frame
