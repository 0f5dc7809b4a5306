"""1,000 connections held at once on one server process, exchanging messages: zero errors,
zero lost, and the server's task count back to where it started once they are gone."""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Iterator

import pytest

import wschannels
from bench.servers.registry import ServerKind
from tests.reliability.conftest import OPTIONS, client
from wschannels import Done, Receiver, Sender, select

pytestmark = [pytest.mark.load, pytest.mark.timeout(300)]

CONNECTIONS = 1000
MESSAGES = 5  # per connection, each echoed


@pytest.fixture(autouse=True)
def open_files() -> Iterator[None]:
    """Two descriptors per connection here (server and client side): raise the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 20_000), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Handlers:
    """How many handlers run now, and the most that ran at once."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0


async def settle(condition: object, seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_a_thousand_connections_exchange_messages_with_nothing_lost(
    server_kind: ServerKind, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    handlers = Handlers()
    all_open = asyncio.Event()
    release = asyncio.Event()

    @wschannels.messages(OPTIONS)
    async def echo(receiver: Receiver[str], sender: Sender[str], done: Done) -> None:
        handlers.running += 1
        handlers.peak = max(handlers.peak, handlers.running)
        try:
            while True:
                chosen, value, _ = await select(receiver, done)
                if chosen is done:
                    return
                await sender.send(value)
        finally:
            handlers.running -= 1

    async with server_kind.serve({"/": echo}, OPTIONS) as port:
        baseline = len(asyncio.all_tasks())
        opening = asyncio.Semaphore(100)  # the accept backlog is finite

        async def one(index: int) -> list[str]:
            async with opening:
                ws = await client(port, "/", open_timeout=60, ping_interval=None)
            async with ws:
                if handlers.running >= CONNECTIONS:
                    all_open.set()
                await all_open.wait()  # every connection is open before any message goes
                sent = [f"{index}:{n}" for n in range(MESSAGES)]
                for message in sent:
                    await ws.send(message)
                got = [await ws.recv() for _ in sent]
                await release.wait()
                return got

        started = time.monotonic()
        tasks = [asyncio.create_task(one(index)) for index in range(CONNECTIONS)]
        async with asyncio.timeout(120):
            while handlers.running < CONNECTIONS and not any(t.done() for t in tasks):
                await asyncio.sleep(0.05)
            all_open.set()
            await asyncio.sleep(0)  # let the exchanges run, then let the clients go
            release.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        seconds = time.monotonic() - started

        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors == [], f"{len(errors)} clients failed, first: {errors[:1]!r}"
        assert handlers.peak == CONNECTIONS
        assert results == [[f"{i}:{n}" for n in range(MESSAGES)] for i in range(CONNECTIONS)]
        await settle(lambda: handlers.running == 0)
        await settle(lambda: len(asyncio.all_tasks()) <= baseline)
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []
    print(f"{server_kind.name}: {CONNECTIONS} connections, {CONNECTIONS * MESSAGES} echoes "
          f"in {seconds:.1f} s")  # fmt: skip
