"""The hub on a real 3-master Redis Cluster: rooms on different shards, sharded pub/sub.

The cluster is three ``redis-server --cluster-enabled yes`` processes joined
with ``redis-cli --cluster create``, on free ports of 127.0.0.1.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from wschannels.hub import Hub

from ..conftest import free_port, serve
from ..redis_server import redis_executable
from .hubapp import create_app
from .test_hub_suite import Side

Connect = Any


def _cluster_port() -> int:
    """A free port whose cluster-bus port (+10000) is free too."""
    while True:
        port = free_port()
        if port < 55000:
            try:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                pass


class RedisCluster:
    """Three masters, no replicas, every slot covered."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ports = [_cluster_port() for _ in range(3)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> RedisCluster:
        executable = redis_executable()
        cli = shutil.which("redis-cli")
        assert cli is not None, "redis-cli comes with redis-server (package redis-tools)"
        for port in self.ports:
            self.processes.append(
                subprocess.Popen(
                    [
                        executable,
                        *("--port", str(port), "--bind", "127.0.0.1"),
                        *("--cluster-enabled", "yes"),
                        *("--cluster-config-file", f"nodes-{port}.conf"),
                        *("--save", "", "--appendonly", "no"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    cwd=self.directory,
                )
            )
        for port in self.ports:
            self._wait(lambda port=port: redis.Redis(port=port).ping())
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                *("--cluster-replicas", "0", "--cluster-yes"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for port in self.ports:
            self._wait(
                lambda port=port: redis.Redis(port=port).cluster("info")["cluster_state"] == "ok"
            )
        return self

    @staticmethod
    def _wait(check: Any) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                if check():
                    return
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, "the Redis Cluster did not come up"
            time.sleep(0.05)

    def owner(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot."""
        slot = key_slot(key.encode())
        for start, end, master, *_ in redis.Redis(port=self.ports[0]).execute_command(
            "CLUSTER", "SLOTS"
        ):
            if start <= slot <= end:
                return int(master[1])
        raise AssertionError(f"no master serves slot {slot}")

    def shard_subscribers(self, port: int, channel: str) -> int:
        reply = redis.Redis(port=port).execute_command("PUBSUB", "SHARDNUMSUB", channel)
        return int(reply[1])

    def kill(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.kill()


@pytest.fixture
async def cluster_sides(redis_cluster: RedisCluster) -> AsyncIterator[tuple[Side, Side]]:
    async with AsyncExitStack() as stack:
        sides = []
        for _ in range(2):
            hub = Hub(redis_cluster.url, history_size=100, key_prefix="c")
            await stack.enter_async_context(hub)
            server = await stack.enter_async_context(serve(create_app(hub)))
            sides.append(Side(hub, server))
        yield sides[0], sides[1]


def _rooms_on_every_shard(cluster: RedisCluster) -> dict[int, str]:
    rooms: dict[int, str] = {}
    for number in range(1000):
        room = f"room{number}"
        rooms.setdefault(cluster.owner(f"c:{{{room}}}:messages"), room)
        if len(rooms) == 3:
            return rooms
    raise AssertionError("no rooms on three shards")


async def test_rooms_on_different_shards_fan_out_presence_and_recover_across_processes(
    redis_cluster: RedisCluster, cluster_sides: tuple[Side, Side], connect: Connect
) -> None:
    one, two = cluster_sides
    assert one.hub.statistics().backend == "redis-cluster"
    rooms = _rooms_on_every_shard(redis_cluster)
    members = {}
    for room in rooms.values():
        members[room] = [
            await connect(one.port, f"/members/a{room}/{room}"),
            await connect(two.port, f"/members/b{room}/{room}"),
        ]

    for port, room in rooms.items():
        channel = f"c:{{{room}}}:messages"
        # Sharded pub/sub: the room's channel is known to its own shard only.
        assert redis_cluster.shard_subscribers(port, channel) == 2
        for other in redis_cluster.ports:
            if other != port:
                assert redis_cluster.shard_subscribers(other, channel) == 0
        positions = await one.publish(room, f"to {room}", "second")
        assert [p.offset for p in positions if p] == [1, 2]
        for member in members[room]:
            await member.wait_for(lambda got: len(got) == 2)
            assert member.texts() == [f"to {room}", "second"]
        assert sorted(i["name"] for i in await two.hub.presence(room)) == [f"a{room}", f"b{room}"]

    room = next(iter(rooms.values()))
    leaver = members[room][1]
    last_seen = leaver.positions()[-1]
    await leaver.close()
    await one.publish(room, "while away 1", "while away 2")
    back = await connect(two.port, f"/since/b{room}/{room}/{last_seen}")
    await back.wait_for(lambda got: len(got) == 2)
    assert back.texts() == ["while away 1", "while away 2"]
