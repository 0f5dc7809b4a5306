"""The hub over Redis: app processes sharing a real redis-server, real clients on each.

Tests that break nothing share one ``cluster`` (each in rooms of its own);
those that crash a process or Redis start their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from wschannels.hub import BackendUnavailable, Hub

from ..conftest import free_port
from .harness import AppProcess, Cluster, RedisServer, eventually

Connect = Callable[..., Any]
StartApp = Callable[..., AppProcess]
StartTwoApps = Callable[..., tuple[AppProcess, ...]]


async def test_a_publish_in_one_process_reaches_members_in_every_process(
    cluster: Cluster, connect: Connect
) -> None:
    redis_server, one, two = cluster
    ada = await connect(one.port, "/members/ada/lobby")
    bob = await connect(one.port, "/members/bob/lobby")
    cid = await connect(two.port, "/members/cid/lobby")
    dan = await connect(two.port, "/plain/dan/lobby")
    eve = await connect(two.port, "/members/eve/elsewhere")
    # Joined means subscribed: no wait is needed before publishing elsewhere.
    assert redis_server.numsub("lobby") == 2

    # Order holds per publisher, not across them (a local publish reaches local
    # members before a remote one comes back from Redis): each publish is
    # awaited everywhere before the next publisher speaks.
    assert (await one.publish("lobby", "from one")).status_code == 200
    for member in (ada, bob, cid):
        await member.wait_for(lambda got: len(got) == 1)
    assert (await two.publish("lobby", "from two", plain=True)).status_code == 200
    for member in (ada, bob, cid):
        await member.wait_for(lambda got: len(got) == 2)
    await ada.send(text="from ada", room="lobby", action="publish_others")
    await two.publish("elsewhere", "marker")

    for member in (bob, cid):
        await member.wait_for(lambda got: len(got) == 3)
        assert member.texts() == ["from one", '"from two"', "from ada"]
    assert ada.texts() == ["from one", '"from two"']  # not its own
    await dan.wait_for(lambda got: got)
    assert dan.received == ["from two"]  # a str; the two Notes went to its errors instead
    errors = await eventually_stats(two, lambda s: len(s["errors"].get("dan", [])) == 2)
    assert all(error.startswith("TypeError") for error in errors["errors"]["dan"])
    await eve.wait_for(lambda got: got)
    assert eve.texts() == ["marker"]


async def test_messages_from_one_publisher_arrive_in_order_in_every_process(
    cluster: Cluster, connect: Connect
) -> None:
    _, one, two = cluster
    members = [await connect(app.port, f"/members/m{app.port}/ordered") for app in (one, two)]
    members.append(await connect(two.port, "/plain/p/ordered"))
    texts = [str(number) for number in range(300)]

    await one.publish("ordered", *texts, plain=True)

    for member in members:
        await member.wait_for(lambda got: len(got) == 300)
    assert members[0].received == members[1].received == [f'"{text}"' for text in texts]
    assert members[2].received == texts


async def test_count_adds_up_the_members_of_every_process(
    cluster: Cluster, connect: Connect
) -> None:
    redis_server, one, two = cluster
    for name in ("a", "b"):
        await connect(one.port, f"/members/{name}/counted")
    leaver = await connect(two.port, "/members/c/counted,other")
    for name in ("d", "e"):
        await connect(two.port, f"/plain/{name}/counted")

    assert await one.count("counted") == {"local": 2, "cluster": 5}
    assert await two.count("counted") == {"local": 3, "cluster": 5}
    assert await one.count("other") == {"local": 0, "cluster": 1}

    await leaver.close()
    await eventually(lambda: redis_server.numsub("other") == 0, what="unsubscribed")
    assert await one.count("counted") == {"local": 2, "cluster": 4}
    assert await one.count("other") == {"local": 0, "cluster": 0}


async def test_the_members_of_a_crashed_process_drop_out_of_counts(
    redis_server: RedisServer, start_two_apps: StartTwoApps, connect: Connect
) -> None:
    survivor, crashing = start_two_apps(redis_server.url, {"HUB_HEARTBEAT": "0.3"})
    await connect(survivor.port, "/members/a/room")
    for name in ("b", "c"):
        await connect(crashing.port, f"/members/{name}/room")
    assert (await survivor.count("room"))["cluster"] == 3

    crashing.kill()

    deadline = time.monotonic() + 15
    while (await survivor.count("room"))["cluster"] != 1:
        assert time.monotonic() < deadline, "the crashed process's members still count"
        await asyncio.sleep(0.1)
    # Its entry was cleaned up, not only skipped.
    assert redis_server.client().hlen("wschannels:{room}:members") == 1


async def test_nothing_remains_after_all_clients_leave(cluster: Cluster, connect: Connect) -> None:
    redis_server, one, two = cluster
    # Whatever earlier tests left has gone first: this is the idle state.
    for app in (one, two):
        await eventually_stats(app, lambda s: s["members"] == s["joined"] == 0)
    await eventually(lambda: redis_server.channels() == [], what="no channels to begin with")
    baseline = [(await app.stats())["tasks"] for app in (one, two)]
    clients = []
    for app in (one, two):
        for number in range(4):
            rooms = ",".join(f"room{(number + k) % 3}" for k in range(2))
            clients.append(await connect(app.port, f"/members/m{number}/{rooms}"))
    assert len(redis_server.channels()) == 3
    assert [redis_server.numsub(f"room{n}") for n in range(3)] == [2, 2, 2]
    await one.publish("room0", "hello")

    for client in clients:
        await client.close()

    for app, tasks in zip((one, two), baseline, strict=True):
        stats = await eventually_stats(app, lambda s: s["members"] == 0 and s["subscriptions"] == 0)
        assert stats["rooms"] == stats["joined"] == 0
        await eventually_stats(app, lambda s, tasks=tasks: s["tasks"] <= tasks)
    await eventually(lambda: redis_server.channels() == [], what="no subscribed channels")
    assert [redis_server.numsub(f"room{n}") for n in range(3)] == [0, 0, 0]
    assert redis_server.client().keys("wschannels:*:members") == []


async def test_redis_going_away_and_coming_back(
    redis_server: RedisServer, start_two_apps: StartTwoApps, connect: Connect
) -> None:
    one, two = start_two_apps(redis_server.url)
    ada = await connect(one.port, "/members/ada/room")
    bob = await connect(two.port, "/members/bob/room")
    await one.publish("room", "before")
    await bob.wait_for(lambda got: got)

    redis_server.kill()

    # Local members still get local publishes; the remote part fails, and says so.
    response = await one.publish("room", "during")
    assert response.status_code == 503
    assert response.json()["error"].startswith("BackendUnavailable: ")
    assert redis_server.url in response.json()["error"]
    await ada.wait_for(lambda got: len(got) == 2)
    assert ada.texts() == ["before", "during"]
    await eventually_stats(one, lambda s: not s["connected"])
    # While Redis is away, publish fails at once rather than buffering.
    started = time.monotonic()
    assert (await one.publish("room", "still away")).status_code == 503
    assert time.monotonic() - started < 2
    assert (await one.count("room")).get("error", "").startswith("BackendUnavailable")

    redis_server.start()

    for app in (one, two):
        await eventually_stats(app, lambda s: s["connected"] and s["reconnects"] == 1)
    await eventually(lambda: redis_server.numsub("room") == 2, what="re-subscribed")
    await two.publish("room", "after")
    await ada.wait_for(lambda got: len(got) == 4)
    await bob.wait_for(lambda got: len(got) == 2)
    assert ada.texts()[-1] == bob.texts()[-1] == "after"
    assert bob.texts() == ["before", "after"]
    assert (await one.count("room"))["cluster"] == 2

    log = one.log()
    for step in ("hub lost Redis at", "still unreachable", "hub reconnected", "re-subscribed 1"):
        assert step in log, f"no log line for {step!r}:\n{log}"


async def test_a_frozen_redis_delays_only_remote_delivery_and_local_members_never_wait(
    redis_server: RedisServer, start_two_apps: StartTwoApps, connect: Connect
) -> None:
    one, two = start_two_apps(redis_server.url, {"HUB_TIMEOUT": "1", "HUB_HEARTBEAT": "0.5"})
    ada = await connect(one.port, "/members/ada/frozen")
    bob = await connect(two.port, "/members/bob/frozen")

    redis_server.pause()  # SIGSTOP: connections stay open, nothing answers
    latencies, statuses = [], []
    try:
        frozen_until = time.monotonic() + 3
        while time.monotonic() < frozen_until:
            number = len(latencies)
            started = time.monotonic()
            statuses.append((await one.publish("frozen", f"during {number}")).status_code)
            await ada.wait_for(lambda got, n=number: len(got) == n + 1)
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.05)
    finally:
        redis_server.resume()

    # The local member got every publish at once, in order, for the 3 s Redis was frozen.
    assert max(latencies) < 1.0, latencies
    assert ada.texts() == [f"during {n}" for n in range(len(latencies))]
    # Publishes went into the outbox until the hub knew Redis was down, then were refused at once.
    assert statuses[0] == 200
    assert 503 in statuses
    stats = await one.stats()
    assert stats["outbox_refused"] == statuses.count(503)
    # Remote delivery resumes once Redis answers again.
    for app in (one, two):
        await eventually_stats(app, lambda s: s["connected"] and s["subscriptions"] == 1)
    assert (await one.publish("frozen", "after")).status_code == 200
    await bob.wait_for(lambda got: got and got[-1]["text"] == "after")
    assert "during" not in " ".join(bob.texts()[len(bob.texts()) - 1 :])


async def test_a_hub_whose_redis_is_unreachable_fails_at_start_naming_the_url() -> None:
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    hub = Hub(url, backend_timeout=5)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"Redis at redis://:\*\*\*@127\.0\.0\.1:\d+/0"):
        await hub.start()
    assert time.monotonic() - started < 5
    with pytest.raises(RuntimeError, match="not started"):
        await hub.publish("room", "hello")


def test_an_app_whose_redis_is_unreachable_does_not_start(start_app: StartApp) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    app = start_app(url, wait=False)
    assert app.process is not None
    assert app.process.wait(timeout=30) != 0
    assert f"cannot connect to Redis at {url}" in app.log()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://127.0.0.1:port/0", "invalid Redis URL 'redis://127.0.0.1:port/0'"),
        ("redis://:secret@127.0.0.1:port/0", r"invalid Redis URL 'redis://:\*\*\*@127"),
    ],
)
def test_a_bad_redis_url_is_refused_naming_it(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Hub(url)


async def test_leaving_unsubscribes_a_room_once_its_last_member_here_is_gone(
    cluster: Cluster, connect: Connect
) -> None:
    redis_server, one, _ = cluster
    ada = await connect(one.port, "/members/ada/left,stay")
    bob = await connect(one.port, "/members/bob/left")
    assert redis_server.numsub("left") == 1  # one subscription per process, not per member

    await ada.send(text="", room="left", action="leave")
    await ada.wait_for(lambda got: got)  # answered after leave() returned
    assert redis_server.numsub("left") == 1  # bob is still in it
    await bob.send(text="", room="left", action="leave")
    await bob.wait_for(lambda got: got)
    assert redis_server.numsub("left") == 0
    assert redis_server.numsub("stay") == 1


async def test_a_foreign_message_on_a_room_channel_is_ignored(
    cluster: Cluster, connect: Connect
) -> None:
    redis_server, one, two = cluster
    ada = await connect(one.port, "/members/ada/foreign")

    redis_server.client().publish("wschannels:{foreign}:messages", b"not from a hub")
    await two.publish("foreign", "from a hub")

    await ada.wait_for(lambda got: got)
    assert ada.texts() == ["from a hub"]
    assert (await one.stats())["connected"]
    assert "ignored a message on b'wschannels:{foreign}:messages'" in one.log()


async def eventually_stats(app: AppProcess, check: Callable[[dict[str, Any]], bool]) -> Any:
    """Poll an app's /stats until ``check`` holds; returns those stats."""
    deadline = time.monotonic() + 15
    while True:
        stats = await app.stats()
        if check(stats):
            return stats
        assert time.monotonic() < deadline, f"stats never matched: {stats}"
        await asyncio.sleep(0.05)


async def test_a_subscription_connection_killed_by_redis_is_noticed_and_resubscribed(
    redis_server: RedisServer, start_two_apps: StartTwoApps, connect: Connect
) -> None:
    one, two = start_two_apps(redis_server.url)
    await connect(one.port, "/members/ada/killed")
    bob = await connect(two.port, "/members/bob/killed")

    # What an output-buffer limit or an operator does: Redis drops every subscriber.
    killed = redis_server.client().client_kill_filter(_type="pubsub")
    assert killed == 2

    for app in (one, two):
        await eventually_stats(
            app, lambda s: s["reconnects"] == 1 and s["connected"] and s["subscriptions"] == 1
        )
    await eventually(lambda: redis_server.numsub("killed") == 2, what="re-subscribed")
    assert (await one.publish("killed", "after the kill")).status_code == 200
    await bob.wait_for(lambda got: got)
    assert bob.texts() == ["after the kill"]
    assert "hub lost Redis at" in one.log()


async def test_a_full_outbox_refuses_a_publish_at_once_and_counts_it(
    redis_server: RedisServer,
) -> None:
    async with Hub(redis_server.url, max_outbox_bytes=10_000, backend_timeout=5) as hub:
        redis_server.pause()  # the outbox task is now stuck sending the first message
        try:
            await hub.publish("room", "x" * 6000)  # fits: an empty outbox takes any message
            with pytest.raises(BackendUnavailable, match="outbox is full"):
                await hub.publish("room", "y" * 6000)
            stats = hub.statistics()
            assert stats.outbox_refused == 1
            assert stats.outbox_bytes > 10_000 - 6000
        finally:
            redis_server.resume()
