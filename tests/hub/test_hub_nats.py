"""The hub over NATS losing its server and getting it back: a real ``nats-server -js``.

Two app servers in this process, each on a Hub of its own, share one
nats-server that the test kills and restarts on the same port and store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from wschannels.hub import BackendUnavailable, Hub

from ..conftest import serve
from ..nats_server import NatsServer
from .harness import eventually
from .hubapp import Note, create_app

Connect = Callable[..., Any]
Sides = tuple[tuple[Hub, int], tuple[Hub, int]]


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path).start()
    yield server
    server.kill()


@pytest.fixture
async def sides(nats_server: NatsServer) -> AsyncIterator[Sides]:
    """Two app servers, each on a hub of its own (no history), on ``nats_server``."""
    async with AsyncExitStack() as stack:
        pairs = []
        for _ in range(2):
            hub = Hub(nats_server.url, backend_timeout=1)
            await stack.enter_async_context(hub)
            server = await stack.enter_async_context(serve(create_app(hub)))
            pairs.append((hub, server.port))
        yield pairs[0], pairs[1]


async def test_nats_going_away_and_coming_back(
    nats_server: NatsServer, sides: Sides, connect: Connect
) -> None:
    (one, one_port), (two, two_port) = sides
    ada = await connect(one_port, "/members/ada/room")
    bob = await connect(two_port, "/members/bob/room")
    await one.publish("room", Note(text="before"))
    await bob.wait_for(lambda got: got)

    nats_server.kill()
    await eventually(lambda: not one.statistics().connected, what="hub one sees NATS gone")

    # Local members still get local publishes; the remote part fails at once, and says so.
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match=nats_server.url):
        await one.publish("room", Note(text="during"))
    assert time.monotonic() - started < 1
    await ada.wait_for(lambda got: len(got) == 2)
    assert ada.texts() == ["before", "during"]
    with pytest.raises(BackendUnavailable):
        await one.presence("room")
    assert one.statistics().backend_failures >= 2

    nats_server.start()  # the same port and JetStream store

    def reconnected() -> bool:
        return all(h.statistics().connected and h.statistics().reconnects == 1 for h in (one, two))

    await eventually(reconnected, what="both hubs reconnected")
    await two.publish("room", Note(text="after"))
    await ada.wait_for(lambda got: len(got) == 3)
    await bob.wait_for(lambda got: len(got) == 2)
    assert ada.texts() == ["before", "during", "after"]
    assert bob.texts() == ["before", "after"]  # at most once: "during" never left process one
    names = await eventually_async(lambda: one.presence("room"), ["ada", "bob"])
    assert names == ["ada", "bob"]  # presence is rebuilt from both processes' heartbeats


async def eventually_async(call: Callable[[], Any], expected: list[str]) -> list[str]:
    """The member names ``await call()`` lists, once they are ``expected`` (or after 15 s)."""
    deadline = time.monotonic() + 15
    while True:
        names = sorted(info["name"] for info in await call())
        if names == expected or time.monotonic() > deadline:
            return names
        await asyncio.sleep(0.1)
