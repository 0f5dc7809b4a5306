"""The in-process hub, served by a real uvicorn server to real websockets clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import pydantic
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette

from wschannels.hub import Hub, SlowConsumerPolicy

from ..conftest import serve
from .harness import eventually
from .hubapp import Note, create_app

Connect = Callable[..., Any]


class Served:
    """A started hub behind a served ``hubapp``."""

    def __init__(self, hub: Hub, port: int, errors: dict[str, list[str]]) -> None:
        self.hub = hub
        self.port = port
        self.errors = errors


@asynccontextmanager
async def served(hub: Hub) -> AsyncIterator[Served]:
    async with hub:
        app = create_app(hub)
        async with serve(app) as server:
            yield Served(hub, server.port, app.state.seen_errors)


class Counted(pydantic.BaseModel):
    """A pydantic message that counts how often it is encoded."""

    encoded: ClassVar[int] = 0
    text: str

    def model_dump_json(self, **options: Any) -> str:
        Counted.encoded += 1
        return super().model_dump_json(**options)


async def test_a_publish_reaches_every_member_of_the_room_and_no_one_else(
    connect: Connect,
) -> None:
    async with served(Hub()) as app:
        ada = await connect(app.port, "/members/ada/lobby")
        bob = await connect(app.port, "/members/bob/lobby")
        eve = await connect(app.port, "/members/eve/elsewhere")
        assert app.hub.local_count("lobby") == 2

        await app.hub.publish("lobby", Note(text="hello"))
        await app.hub.publish("elsewhere", Note(text="marker"))

        await eve.wait_for(lambda got: got)
        await ada.wait_for(lambda got: got)
        await bob.wait_for(lambda got: got)
        assert ada.received == [{"text": "hello", "room": "", "action": "publish", "pad": ""}]
        assert bob.texts() == ["hello"]
        assert eve.texts() == ["marker"]


async def test_exclude_leaves_out_the_given_sender(connect: Connect) -> None:
    async with served(Hub()) as app:
        ada = await connect(app.port, "/members/ada/lobby")
        bob = await connect(app.port, "/members/bob/lobby")

        await ada.send(text="from ada", room="lobby", action="publish_others")
        await bob.wait_for(lambda got: got)
        await app.hub.publish("lobby", Note(text="to everyone"))

        await ada.wait_for(lambda got: got)
        await bob.wait_for(lambda got: len(got) == 2)
        assert ada.texts() == ["to everyone"]
        assert bob.texts() == ["from ada", "to everyone"]


async def test_messages_from_one_publisher_arrive_in_publish_order(connect: Connect) -> None:
    async with served(Hub()) as app:
        members = [await connect(app.port, f"/members/m{i}/ordered") for i in range(3)]
        plain = await connect(app.port, "/plain/p/ordered")

        for number in range(300):
            await app.hub.publish("ordered", str(number))

        expected = [str(number) for number in range(300)]
        for member in [*members, plain]:
            await member.wait_for(lambda got: len(got) == 300)
        # json members get each str as a JSON string, plain members as it is.
        for member in members:
            assert member.received == [f'"{number}"' for number in expected]
        assert plain.received == expected


async def test_each_binding_kind_gets_its_own_frame_encoded_once_per_publish(
    connect: Connect,
) -> None:
    async with served(Hub()) as app:
        json_members = [await connect(app.port, f"/members/j{i}/mixed") for i in range(20)]
        plain_members = [await connect(app.port, f"/plain/p{i}/mixed") for i in range(5)]

        Counted.encoded = 0
        await app.hub.publish("mixed", Counted(text="counted"))
        assert Counted.encoded == 1  # once for 20 json members, not once per member

        await app.hub.publish("mixed", "plain text")
        for member in json_members:
            await member.wait_for(lambda got: len(got) == 2)
            assert member.received == [{"text": "counted"}, '"plain text"']
        for member in plain_members:
            await member.wait_for(lambda got: got)
            assert member.received == ["plain text"]


async def test_a_message_a_members_binding_cannot_carry_goes_to_its_errors_channel(
    connect: Connect,
) -> None:
    async with served(Hub()) as app:
        json_member = await connect(app.port, "/members/ada/mixed")
        await connect(app.port, "/plain/bob/mixed")

        await app.hub.publish("mixed", Note(text="structured"))

        await json_member.wait_for(lambda got: got)
        await eventually(lambda: app.errors.get("bob"), what="bob's error")
        assert "TypeError" in app.errors["bob"][0]
        assert "messages()" in app.errors["bob"][0]
        assert app.hub.statistics().undeliverable == 1


async def test_a_message_that_cannot_be_encoded_raises_before_anyone_gets_it(
    connect: Connect,
) -> None:
    async with served(Hub()) as app:
        ada = await connect(app.port, "/members/ada/room")

        with pytest.raises(TypeError):
            await app.hub.publish("room", object())
        await app.hub.publish("room", Note(text="next"))

        await ada.wait_for(lambda got: got)
        assert ada.texts() == ["next"]


async def test_a_connection_can_be_in_many_rooms_and_leave_one(connect: Connect) -> None:
    async with served(Hub()) as app:
        ada = await connect(app.port, "/members/ada/red,green,blue")
        assert [app.hub.local_count(room) for room in ("red", "green", "blue")] == [1, 1, 1]

        for room in ("red", "green", "blue"):
            await app.hub.publish(room, Note(text=room))
        await ada.wait_for(lambda got: len(got) == 3)
        assert ada.texts() == ["red", "green", "blue"]

        await ada.send(text="", room="green", action="leave")
        await ada.wait_for(lambda got: len(got) == 4)  # the "left" answer
        assert app.hub.local_count("green") == 0
        assert "green" not in app.hub.rooms()
        await app.hub.publish("green", Note(text="not for ada"))
        await app.hub.publish("blue", Note(text="still for ada"))
        await ada.wait_for(lambda got: len(got) == 5)
        assert ada.texts()[-2:] == ["left", "still for ada"]


async def test_members_leave_by_themselves_when_their_connections_end(connect: Connect) -> None:
    async with served(Hub()) as app:
        baseline_tasks = len(asyncio.all_tasks())
        clients = [
            await connect(app.port, f"/members/m{i}/{'a,b' if i % 2 else 'b,c'}") for i in range(6)
        ]
        assert app.hub.statistics().members == 12

        for client in clients:
            await client.close()

        await eventually(lambda: app.hub.statistics().members == 0, what="no members")
        assert app.hub.rooms() == []
        assert app.hub._joined == {}
        await eventually(lambda: len(asyncio.all_tasks()) <= baseline_tasks, what="tasks ended")


async def test_joining_and_publishing_start_no_task_per_member(connect: Connect) -> None:
    async with served(Hub()) as app:
        members = [await connect(app.port, f"/members/m{i}/idle") for i in range(30)]
        tasks_before = len(asyncio.all_tasks())

        for member in members:
            await member.send(text="", room="busy", action="join")
        for member in members:
            await member.wait_for(lambda got: got)
        for number in range(10):
            await app.hub.publish("busy", Note(text=str(number)))

        assert app.hub.local_count("busy") == 30
        assert len(asyncio.all_tasks()) == tasks_before
        for member in members:
            await member.wait_for(lambda got: len(got) == 11)


async def test_a_message_bigger_than_the_bound_reaches_a_member_that_keeps_up(
    connect: Connect,
) -> None:
    async with served(Hub(max_queued_bytes=1024)) as app:
        ada = await connect(app.port, "/members/ada/big")

        await app.hub.publish("big", Note(text="x" * 100_000))

        await ada.wait_for(lambda got: got)
        assert len(ada.texts()[0]) == 100_000
        statistics = app.hub.statistics()
        assert statistics.slow_consumers_disconnected == statistics.slow_consumer_waits == 0


PAD = "x" * 16_384
SLOW_COUNTERS = {
    SlowConsumerPolicy.DISCONNECT: "slow_consumers_disconnected",
    SlowConsumerPolicy.DROP_OLDEST: "slow_consumer_dropped_oldest",
    SlowConsumerPolicy.DROP_NEWEST: "slow_consumer_dropped_newest",
}


async def publish_until_slow(app: Served, fast: Any, policy: SlowConsumerPolicy) -> int:
    """Publish numbered messages, each received by ``fast`` before the next, until
    the policy was applied to the stalled member; returns how many were published."""
    counter = SLOW_COUNTERS[policy]
    published = 0
    while not getattr(app.hub.statistics(), counter):
        assert published < 2_000, "the stalled member never went over the bound"
        await app.hub.publish("room", Note(text=str(published), pad=PAD))
        published += 1
        # The other member gets every message while the stalled one reads nothing.
        await fast.wait_for(lambda got, n=published: len(got) == n)
    return published


async def test_disconnect_policy_closes_a_stalled_member_with_1013_and_the_room_goes_on(
    connect: Connect,
) -> None:
    async with served(Hub(max_queued_bytes=64 * 1024)) as app:
        assert app.hub.on_slow_consumer is SlowConsumerPolicy.DISCONNECT
        fast = await connect(app.port, "/members/fast/room")
        stalled = await connect(app.port, "/members/stalled/room", reading=False)
        await eventually(lambda: app.hub.local_count("room") == 2)

        published = await publish_until_slow(app, fast, SlowConsumerPolicy.DISCONNECT)

        assert app.hub.local_count("room") == 1  # out of the room at once
        for number in range(published, published + 5):
            await app.hub.publish("room", Note(text=str(number), pad=PAD))
        await fast.wait_for(lambda got: len(got) == published + 5)
        assert fast.texts() == [str(n) for n in range(published + 5)]
        await eventually(lambda: app.errors.get("stalled"), what="the stalled member's error")
        assert app.errors["stalled"][0].startswith("SlowConsumer: slow consumer")
        assert "policy disconnect" in app.errors["stalled"][0]

        stalled.resume()
        await eventually(lambda: stalled.close_code is not None, what="the close")
        assert stalled.close_code == 1013


async def test_drop_oldest_policy_keeps_the_newest_messages_of_a_stalled_member(
    connect: Connect,
) -> None:
    async with served(Hub(max_queued_bytes=64 * 1024, on_slow_consumer="drop_oldest")) as app:
        fast = await connect(app.port, "/members/fast/room")
        stalled = await connect(app.port, "/members/stalled/room", reading=False)
        await eventually(lambda: app.hub.local_count("room") == 2)

        published = await publish_until_slow(app, fast, SlowConsumerPolicy.DROP_OLDEST)
        for number in range(published, published + 5):
            await app.hub.publish("room", Note(text=str(number), pad=PAD))
        last = str(published + 4)
        await fast.wait_for(lambda got: len(got) == published + 5)

        stalled.resume()
        await stalled.wait_for(lambda got: got and got[-1]["text"] == last, "the newest message")
        numbers = [int(text) for text in stalled.texts()]
        assert numbers == sorted(set(numbers))  # in order, no duplicates
        assert len(numbers) < published + 5  # some of the oldest were dropped
        assert app.hub.local_count("room") == 2
        assert app.hub.statistics().slow_consumer_dropped_oldest >= 1
        await eventually(lambda: app.errors.get("stalled"), what="the stalled member's error")
        assert "policy drop_oldest" in app.errors["stalled"][0]


async def test_drop_newest_policy_keeps_what_a_stalled_member_had_queued(
    connect: Connect,
) -> None:
    async with served(Hub(max_queued_bytes=64 * 1024, on_slow_consumer="drop_newest")) as app:
        fast = await connect(app.port, "/members/fast/room")
        stalled = await connect(app.port, "/members/stalled/room", reading=False)
        await eventually(lambda: app.hub.local_count("room") == 2)

        published = await publish_until_slow(app, fast, SlowConsumerPolicy.DROP_NEWEST)
        for number in range(published, published + 5):
            await app.hub.publish("room", Note(text=str(number), pad=PAD))
        await fast.wait_for(lambda got: len(got) == published + 5)

        stalled.resume()
        members = list(app.hub._joined)
        await eventually(lambda: all(m.delivered_bytes_queued == 0 for m in members), what="drain")
        await app.hub.publish("room", Note(text="end"))
        await stalled.wait_for(lambda got: got and got[-1]["text"] == "end", "the end marker")
        numbers = [int(text) for text in stalled.texts()[:-1]]
        first_dropped = published - 1
        assert numbers[:first_dropped] == list(range(first_dropped))  # what it had queued stays
        assert first_dropped not in numbers  # the message that did not fit was dropped
        assert numbers == sorted(numbers)
        assert app.hub.statistics().slow_consumer_dropped_newest >= 6
        await eventually(lambda: app.errors.get("stalled"), what="the stalled member's error")
        assert "policy drop_newest" in app.errors["stalled"][0]


async def test_block_policy_makes_publish_wait_for_a_stalled_member_and_loses_nothing(
    connect: Connect,
) -> None:
    async with served(Hub(max_queued_bytes=64 * 1024, on_slow_consumer="block")) as app:
        fast = await connect(app.port, "/members/fast/room")
        stalled = await connect(app.port, "/members/stalled/room", reading=False)
        await eventually(lambda: app.hub.local_count("room") == 2)

        published = 0
        while True:
            assert published < 2_000, "the stalled member never went over the bound"
            publishing = asyncio.create_task(
                app.hub.publish("room", Note(text=str(published), pad=PAD))
            )
            published += 1
            await fast.wait_for(lambda got, n=published: len(got) == n)
            if app.hub.statistics().slow_consumer_waits:
                break
            await publishing

        await asyncio.sleep(0.2)
        assert not publishing.done()  # waits on the stalled member...
        assert fast.texts()[-1] == str(published - 1)  # ...which did not hold up the other

        stalled.resume()
        await asyncio.wait_for(publishing, 15)
        await stalled.wait_for(lambda got: len(got) == published, "every message")
        assert stalled.texts() == [str(n) for n in range(published)]
        await eventually(lambda: app.errors.get("stalled"), what="the stalled member's error")
        assert "policy block" in app.errors["stalled"][0]


async def test_the_hub_is_a_starlette_or_fastapi_lifespan_in_one_line() -> None:
    starlette_hub, fastapi_hub = Hub(), Hub()
    for hub, app in (
        (starlette_hub, Starlette(lifespan=starlette_hub.lifespan)),
        (fastapi_hub, FastAPI(lifespan=fastapi_hub.lifespan)),
    ):
        async with serve(app, lifespan="on"):
            await hub.publish("room", "the hub is started")  # would raise if not
        with pytest.raises(RuntimeError, match="not started"):
            await hub.publish("room", "the hub is stopped")


async def test_a_hub_used_before_start_says_how_to_start_it() -> None:
    hub = Hub()
    with pytest.raises(RuntimeError, match=r"async with hub:.*lifespan=hub.lifespan"):
        await hub.publish("room", "hello")
    async with hub:
        with pytest.raises(RuntimeError, match="already started"):
            await hub.start()
    await hub.stop()  # idempotent


async def test_join_takes_the_handlers_sender() -> None:
    async with Hub() as hub:
        with pytest.raises(TypeError, match="takes the handler's Sender"):
            await hub.join("room", object())
        with pytest.raises(TypeError, match="room name is a str"):
            await hub.publish(42, "hello")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"on_slow_consumer": "ignore"}, "on_slow_consumer must be one of 'disconnect'"),
        ({"max_queued_bytes": 0}, "max_queued_bytes must be an int > 0"),
        ({"backend_timeout": 0}, "backend_timeout must be a number of seconds > 0"),
        ({"url": "http://localhost:6379"}, "unsupported hub URL 'http://localhost:6379'"),
    ],
)
def test_bad_hub_settings_are_refused_saying_what_is_wrong(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Hub(**arguments)


def test_memory_url_is_the_in_process_hub() -> None:
    assert Hub("memory://").statistics().backend == "memory"
    assert Hub().statistics().backend == "memory"
