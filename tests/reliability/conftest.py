"""The reliability suite runs on every server of `bench.servers.registry` that imports here."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

import wschannels
from bench.servers import registry
from bench.servers.registry import ServerKind
from wschannels import Done, Errors, Receiver, Sender, select

SERVERS = registry.available()

# Every route of the hostile-input and fault tests allows any Origin: raw clients send their own.
OPTIONS = wschannels.Options(allowed_origin=".*", max_message_size=65536)


@pytest.fixture(params=SERVERS, ids=[kind.name for kind in SERVERS])
def server_kind(request: pytest.FixtureRequest) -> ServerKind:
    """Each server wschannels runs on (the ones whose import fails are named in the header)."""
    kind: ServerKind = request.param
    return kind


@wschannels.raw(OPTIONS)
async def echo_raw(receiver: Receiver[str | bytes], sender: Sender[str | bytes]) -> None:
    async for message in receiver:
        await sender.send(message)


@wschannels.messages(OPTIONS)
async def echo_text(
    receiver: Receiver[str], sender: Sender[str], errors: Errors, done: Done
) -> None:
    """Echoes text; an error on ``errors`` goes back as ``error: <its class>``."""
    while True:
        chosen, value, _ = await select(receiver, errors, done)
        if chosen is done:
            return
        if chosen is errors:
            await sender.send(f"error: {type(value).__name__}")
        else:
            await sender.send(value)


ROUTES: dict[str, Callable[..., Any]] = {"/raw": echo_raw, "/text": echo_text}


def client(port: int, path: str = "/raw", **kwargs: Any) -> Any:
    """A well-behaved `websockets` client."""
    return connect(f"ws://127.0.0.1:{port}{path}", origin=None, compression=None, **kwargs)


async def assert_echoes(ws: ClientConnection, message: str = "still here") -> None:
    """``ws`` gets its message back: the server still serves it."""
    async with asyncio.timeout(10):
        await ws.send(message)
        assert await ws.recv() == message


async def assert_serves_new_client(port: int, path: str = "/raw") -> None:
    async with client(port, path) as ws:
        await assert_echoes(ws, "new client")


@contextlib.asynccontextmanager
async def bystander(port: int, path: str = "/raw") -> AsyncIterator[ClientConnection]:
    """A well-behaved client connected before the hostile one and checked after it."""
    async with client(port, path) as ws:
        await assert_echoes(ws, "before")
        yield ws
        await assert_echoes(ws, "after")


@pytest.fixture
async def port(server_kind: ServerKind) -> AsyncIterator[int]:
    """The port of ``ROUTES`` served on each server in turn."""
    async with server_kind.serve(ROUTES, OPTIONS) as listening:
        yield listening
