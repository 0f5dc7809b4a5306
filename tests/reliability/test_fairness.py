"""Fairness and limits on every server: a flooding client does not starve the others, and one
over its route's rate limit is closed with 1008 while the others go on.

How much a flooder raises the others' latency is measured, not asserted here
(``python -m bench.reliability fairness``, docs/reliability.md); these tests assert what
must hold on any machine: every well-behaved client is served while the flood goes on.
"""

from __future__ import annotations

import asyncio
import contextlib

from websockets.exceptions import ConnectionClosed

import wschannels
from bench.servers.registry import ServerKind
from tests.reliability.conftest import OPTIONS, ROUTES, client
from wschannels import ChannelClosed, Done, Errors, Options, Receiver, Sender, select

WELL_BEHAVED = 20
ROUND_TRIPS = 30
IN_FLIGHT = 256


async def test_a_flooding_client_leaves_every_well_behaved_client_served(
    server_kind: ServerKind,
) -> None:
    async with server_kind.serve(ROUTES, OPTIONS) as port:
        flooding = asyncio.Event()
        echoed = 0

        async def flood() -> None:
            nonlocal echoed
            async with client(port, "/raw", max_queue=None) as ws:
                for _ in range(IN_FLIGHT):
                    await ws.send("f" * 32)
                async for _ in ws:  # one more out for each one back, as fast as it goes
                    echoed += 1
                    if echoed == IN_FLIGHT:
                        flooding.set()
                    await ws.send("f" * 32)

        async def well_behaved(index: int) -> list[str]:
            answers = []
            async with client(port, "/raw") as ws:
                for trip in range(ROUND_TRIPS):
                    await ws.send(f"{index}:{trip}")
                    answers.append(str(await ws.recv()))
                    await asyncio.sleep(0.01)
            return answers

        flooder = asyncio.create_task(flood())
        try:
            async with asyncio.timeout(15):
                await flooding.wait()
            before = echoed
            async with asyncio.timeout(60):  # a starved client never finishes
                answers = await asyncio.gather(*(well_behaved(i) for i in range(WELL_BEHAVED)))
            assert not flooder.done(), flooder  # the flood went on all along
            assert echoed - before > IN_FLIGHT  # and was served meanwhile too
        finally:
            flooder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flooder
        for index, got in enumerate(answers):
            assert got == [f"{index}:{trip}" for trip in range(ROUND_TRIPS)]


LIMITED = Options(allowed_origin=".*", max_messages_per_second=20, recv_channel_buffer=64)


async def test_a_client_over_the_rate_limit_is_closed_with_1008_and_the_others_go_on(
    server_kind: ServerKind,
) -> None:
    seen: list[BaseException] = []
    handlers_done = 0

    @wschannels.messages(LIMITED)
    async def limited(
        receiver: Receiver[str], sender: Sender[str], errors: Errors, done: Done
    ) -> None:
        while True:
            chosen, value, _ = await select(receiver, errors, done)
            if chosen is done:  # may win over an error still buffered: read what is left
                seen.extend([error async for error in errors])
                nonlocal handlers_done
                handlers_done += 1
                return
            if chosen is errors:
                seen.append(value)
            else:
                with contextlib.suppress(ChannelClosed):  # the connection closed meanwhile
                    await sender.send(value)

    async with (
        server_kind.serve({**ROUTES, "/limited": limited}, OPTIONS) as port,
        client(port, "/limited") as steady,
        client(port, "/limited") as flooder,
    ):
        with contextlib.suppress(ConnectionClosed):  # closed while it still sends, or reads
            for index in range(200):  # ten times the limit, at once
                await flooder.send(f"flood {index}")
            async with asyncio.timeout(10):
                async for _ in flooder:
                    pass
        assert flooder.close_code == 1008
        async with asyncio.timeout(10):  # the flooder's handler has seen its end
            while handlers_done == 0:
                await asyncio.sleep(0.01)
        assert [type(error) for error in seen] == [wschannels.RateLimited]
        assert str(seen[0]) == "the client sent faster than 20 messages/s"
        for index in range(5):  # 10 messages a second: within the limit
            await steady.send(f"steady {index}")
            assert await asyncio.wait_for(steady.recv(), 10) == f"steady {index}"
            await asyncio.sleep(0.1)
