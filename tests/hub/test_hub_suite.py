"""One suite over every backend: memory, Redis and NATS, each a real server on a free port.

Two app servers ("one" and "two") each run a Hub of their own on the same
backend, as two processes would (in memory, both serve one Hub: the process is
the cluster). Members are real ``websockets`` clients. Each test has a
``key_prefix`` of its own, so the tests share one server per backend.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from wschannels.hub import Hub, Position

from ..conftest import Server, serve
from ..nats_server import NatsServer
from .harness import AppProcess, RedisServer
from .hubapp import create_app

Connect = Callable[..., Any]
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.kill()


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = NatsServer(tmp_path_factory.mktemp("nats")).start()
    yield server.url
    server.kill()


@pytest.fixture(params=["memory", "redis", "nats"])
def backend(request: pytest.FixtureRequest) -> str:
    """The URL of the backend under test."""
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


class Side(NamedTuple):
    """One app server and its hub."""

    hub: Hub
    server: Server

    @property
    def port(self) -> int:
        return self.server.port

    async def publish(self, room: str, *texts: str) -> list[Position | None]:
        async with httpx.AsyncClient(base_url=self.server.http, timeout=15) as http:
            response = await http.post(f"/publish/{room}", json={"texts": texts})
        response.raise_for_status()
        return [None if p is None else Position.parse(p) for p in response.json()["positions"]]


Sides = Callable[..., Any]


@pytest.fixture
async def sides(backend: str) -> AsyncIterator[Sides]:
    """``await sides(**hub_settings)``: two app servers, each on a hub of its own (memory: one)."""
    async with AsyncExitStack() as stack:

        async def open_sides(**settings: Any) -> tuple[Side, Side]:
            settings.setdefault("key_prefix", f"t{next(_prefixes)}x{time.monotonic_ns()}")
            settings.setdefault("backend_timeout", 5)
            first = Hub(backend, **settings)
            await stack.enter_async_context(first)
            second = first
            if backend != "memory://":
                second = Hub(backend, **settings)
                await stack.enter_async_context(second)
            servers = [
                await stack.enter_async_context(serve(create_app(hub))) for hub in (first, second)
            ]
            return Side(first, servers[0]), Side(second, servers[1])

        yield open_sides


async def test_presence_lists_the_members_of_every_process_and_watchers_see_them_come_and_go(
    sides: Sides, connect: Connect
) -> None:
    one, two = await sides()
    ada = await connect(one.port, "/members/ada/lobby")
    await connect(two.port, "/members/bob/lobby")
    await connect(two.port, "/members/cid/elsewhere")

    for side in (one, two):
        names = sorted(info["name"] for info in await side.hub.presence("lobby"))
        assert names == ["ada", "bob"]
        assert await side.hub.count("lobby") == 2

    with one.hub.watch("lobby") as changes:
        first = await asyncio.wait_for(changes.recv(), 15)
        assert sorted(info["name"] for info in first.members) == ["ada", "bob"]
        assert sorted(info["name"] for info in first.joined) == ["ada", "bob"]
        dan = await connect(two.port, "/members/dan/lobby")
        joined = await asyncio.wait_for(changes.recv(), 15)
        assert [info["name"] for info in joined.joined] == ["dan"]
        assert joined.left == ()
        await dan.close()
        left = await asyncio.wait_for(changes.recv(), 15)
        assert [info["name"] for info in left.left] == ["dan"]
        assert sorted(info["name"] for info in left.members) == ["ada", "bob"]
        await ada.close()
        left = await asyncio.wait_for(changes.recv(), 15)
        assert [info["name"] for info in left.left] == ["ada"]
    assert [info["name"] for info in await two.hub.presence("lobby")] == ["bob"]


async def test_a_member_rejoining_with_its_position_gets_exactly_what_it_missed_then_live_ones(
    sides: Sides, connect: Connect
) -> None:
    one, two = await sides(history_size=100)
    ada = await connect(one.port, "/members/ada/news")
    await two.publish("news", "1", "2", "3")
    await ada.wait_for(lambda got: len(got) == 3)
    last_seen = ada.positions()[-1]
    await ada.close()

    missed = [f"missed {n}" for n in range(20)]
    positions = await two.publish("news", *missed)
    assert [p.offset for p in positions if p] == list(range(4, 24))

    back = await connect(one.port, f"/since/ada/news/{last_seen}")
    await two.publish("news", "live")
    await back.wait_for(lambda got: len(got) == 21)
    assert back.texts() == [*missed, "live"]  # no gap, no duplicate, history before live
    assert back.positions() == [str(p) for p in positions] + [back.positions()[-1]]
    assert Position.parse(back.positions()[-1]).offset == 24
    assert one.hub.statistics().recovered == 20


async def test_a_member_joining_fresh_can_first_get_the_rooms_recent_history(
    sides: Sides, connect: Connect
) -> None:
    one, two = await sides(history_size=100)
    await two.publish("recent", *(str(n) for n in range(60)))
    fresh = await connect(one.port, "/since/ada/recent/last=50")
    await two.publish("recent", "live")
    await fresh.wait_for(lambda got: len(got) == 51)
    assert fresh.texts() == [*(str(n) for n in range(10, 60)), "live"]


async def test_recovery_is_refused_when_history_was_trimmed_past_the_position_or_is_another_epoch(
    sides: Sides, connect: Connect
) -> None:
    one, two = await sides(history_size=5)
    ada = await connect(one.port, "/members/ada/short")
    await two.publish("short", "seen")
    await ada.wait_for(lambda got: got)
    last_seen = Position.parse(ada.positions()[-1])
    await ada.close()
    await two.publish("short", *(str(n) for n in range(6)))  # pushes "seen" and "0" out

    trimmed = await connect(one.port, f"/since/ada/short/{last_seen}")
    assert trimmed.received == []
    await trimmed.wait_for(lambda got: trimmed.close_code is not None)
    elsewhere = Position(last_seen.offset, "notthis1")
    other_epoch = await connect(one.port, f"/since/ada/short/{elsewhere}")
    await other_epoch.wait_for(lambda got: other_epoch.close_code is not None)
    assert one.hub.local_count("short") == 0  # neither was added

    # Within the window it still works: the last 5 are there.
    await two.publish("short", "newest")
    kept = Position(last_seen.offset + 3, last_seen.epoch)  # it had "0", "1" and "2"
    ok = await connect(one.port, f"/since/ada/short/{kept}")
    await ok.wait_for(lambda got: len(got) == 4)
    assert ok.texts() == ["3", "4", "5", "newest"]


async def test_history_keeps_at_most_its_size_and_drops_messages_older_than_its_ttl(
    sides: Sides, connect: Connect
) -> None:
    one, two = await sides(history_size=3, history_ttl=1.0)
    await two.publish("kept", "a", "b", "c", "d")
    first = await connect(one.port, "/since/ada/kept/last=10")
    await first.wait_for(lambda got: len(got) == 3)
    assert first.texts() == ["b", "c", "d"]
    await asyncio.sleep(1.6)
    later = await connect(one.port, "/since/bob/kept/last=10")
    await two.publish("kept", "e")
    await later.wait_for(lambda got: got)
    assert later.texts() == ["e"]  # a, b, c, d expired


@pytest.mark.parametrize("history", [0, 1000])
async def test_messages_of_one_publisher_arrive_in_publish_order_in_every_process(
    sides: Sides, connect: Connect, history: int
) -> None:
    one, two = await sides(history_size=history)
    members = [await connect(side.port, f"/members/m{side.port}/ordered") for side in (one, two)]
    texts = [str(n) for n in range(300)]
    await one.publish("ordered", *texts)
    for member in members:
        await member.wait_for(lambda got: len(got) == 300)
        assert member.texts() == texts
    if history:
        assert members[0].positions() == members[1].positions()


@pytest.mark.parametrize("kind", ["redis", "nats"])
async def test_the_members_of_a_killed_process_drop_out_of_presence(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, connect: Connect
) -> None:
    url = request.getfixturevalue(f"{kind}_url")
    env = {"HUB_HEARTBEAT": "0.3", "HUB_PREFIX": f"killed{time.monotonic_ns()}"}
    survivor = AppProcess(tmp_path, url, env).start(wait=False)
    doomed = AppProcess(tmp_path, url, env).start(wait=False)
    try:
        survivor.wait_until_serving()
        doomed.wait_until_serving()
        await connect(survivor.port, "/members/ada/room")
        for name in ("bob", "cid"):
            await connect(doomed.port, f"/members/{name}/room")
        assert (await survivor.get("/presence/room")).json() == ["ada", "bob", "cid"]

        doomed.kill()

        async def names() -> list[str]:
            return list((await survivor.get("/presence/room")).json())

        deadline = time.monotonic() + 10  # TTL: three heartbeats (0.9 s), with room to spare
        while await names() != ["ada"]:
            assert time.monotonic() < deadline, "the killed process's members are still present"
            await asyncio.sleep(0.1)
    finally:
        survivor.stop()
        doomed.stop()


async def test_a_watch_sees_the_members_of_a_killed_process_leave(
    redis_url: str, tmp_path: Path, connect: Connect
) -> None:
    prefix = f"watch{time.monotonic_ns()}"
    doomed = AppProcess(tmp_path, redis_url, {"HUB_HEARTBEAT": "0.3", "HUB_PREFIX": prefix})
    doomed.start()
    try:
        await connect(doomed.port, "/members/bob/room")
        async with Hub(redis_url, key_prefix=prefix, heartbeat_interval=0.3) as hub:
            with hub.watch("room") as changes:
                first = await asyncio.wait_for(changes.recv(), 15)
                assert [info["name"] for info in first.members] == ["bob"]
                doomed.kill()
                event = await asyncio.wait_for(changes.recv(), 15)
                assert [info["name"] for info in event.left] == ["bob"]
                assert event.members == ()
    finally:
        doomed.stop()


async def test_positions_have_a_compact_string_form() -> None:
    position = Position(42, "k3J_9xQa")
    assert str(position) == "42.k3J_9xQa"
    assert Position.parse("42.k3J_9xQa") == position
    for bad in ("", "42", "x.y", "42.", "-1.abc", "42.a b", "1" * 30 + ".a"):
        with pytest.raises(ValueError, match="not a position"):
            Position.parse(bad)
