"""Faults on every server: a client reset mid-message, a half-open peer, a client that stops
reading, a handler that raises, SIGTERM with busy connections. Each ends that connection alone,
the handler learns it, and the server goes on serving a well-behaved client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode

import wschannels
from bench.harness import python_env, wait_for_port
from bench.servers.registry import ServerKind, free_port
from tests.reliability.conftest import ROUTES, assert_serves_new_client, bystander, client
from tests.reliability.rawclient import RawClient, raw_frame
from wschannels import Done, Errors, Options, Receiver, Send, Sender, select

REPO = Path(__file__).resolve().parents[2]
FAST = Options(allowed_origin=".*", ping_period=0.3, pong_wait=1.0, write_wait=1.0,
               send_channel_buffer=4)  # fmt: skip


class Outcome:
    """What the handler of a fault saw: when it learned the connection was over, and errors."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()
        self.ended_at = 0.0
        self.errors: list[BaseException] = []

    def end(self) -> None:
        self.ended_at = time.monotonic()
        self.ended.set()


@contextlib.asynccontextmanager
async def serving(kind: ServerKind, handler: Any, options: Options) -> AsyncIterator[int]:
    async with kind.serve({**ROUTES, "/fault": handler}, options) as port:
        yield port


def reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def receiving_handler(outcome: Outcome, options: Options) -> Any:
    @wschannels.raw(options)
    async def handler(receiver: Receiver[str | bytes], errors: Errors, done: Done) -> None:
        while True:
            chosen, value, _ = await select(receiver, errors, done)
            if chosen is errors:
                outcome.errors.append(value)
            elif chosen is done:
                outcome.end()
                return

    return handler


async def test_a_client_reset_in_the_middle_of_a_message_ends_only_its_connection(
    server_kind: ServerKind,
) -> None:
    outcome = Outcome()
    async with serving(server_kind, receiving_handler(outcome, FAST), FAST) as port:
        async with bystander(port):
            hostile = await RawClient.open(port, "/fault")
            # A frame header for 10,000 bytes, then 100 of them, then RST.
            hostile.send(raw_frame(Opcode.BINARY, b"x" * 10_000)[:120])
            await hostile.drain()
            await asyncio.sleep(0.1)
            reset(hostile.writer.get_extra_info("socket").dup())
            hostile.writer.transport.abort()
            await asyncio.wait_for(outcome.ended.wait(), 10)
        await assert_serves_new_client(port)


async def test_a_half_open_peer_is_dropped_within_ping_period_plus_pong_wait(
    server_kind: ServerKind,
) -> None:
    """The peer completes the handshake, then neither sends nor answers pings."""
    outcome = Outcome()
    async with serving(server_kind, receiving_handler(outcome, FAST), FAST) as port:
        async with bystander(port):
            silent = await RawClient.open(port, "/fault")
            opened = time.monotonic()
            await asyncio.wait_for(outcome.ended.wait(), 10)
            bound = (FAST.ping_period or 0) + (FAST.pong_wait or 0) + 2.0
            assert outcome.ended_at - opened < bound
            silent.close()
        await assert_serves_new_client(port)


DEAF_CLIENTS = 3  # the stall can be missed depending on timing: three at once catch it


async def test_a_client_that_stops_reading_is_learned_by_the_sending_handler(
    server_kind: ServerKind,
) -> None:
    """The handler keeps sending; the client reads nothing and answers no ping."""
    outcomes = [Outcome() for _ in range(DEAF_CLIENTS)]
    sent = [0] * DEAF_CLIENTS

    @wschannels.bytes_messages(FAST)
    async def flood(receiver: Receiver[bytes], sender: Sender[bytes], errors: Errors,
                    done: Done) -> None:  # fmt: skip
        index = int(await receiver.recv())
        outcome, payload = outcomes[index], b"z" * 16384
        while True:
            chosen, value, _ = await select(Send(sender, payload), errors, done)
            if chosen is errors:
                outcome.errors.append(value)
            elif chosen is done:
                outcome.end()
                return
            else:
                sent[index] += 1

    async with serving(server_kind, flood, FAST) as port:
        async with bystander(port):
            deaf = [await RawClient.open(port, "/fault") for _ in range(DEAF_CLIENTS)]
            for index, each in enumerate(deaf):
                each.writer.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_RCVBUF, 4096
                )
                each.writer.transport.pause_reading()
                each.send(raw_frame(Opcode.BINARY, str(index).encode()))
            opened = time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(15):
                    await asyncio.gather(*(outcome.ended.wait() for outcome in outcomes))
            waiting = [i for i, outcome in enumerate(outcomes) if not outcome.ended.is_set()]
            assert waiting == [], f"after 15 s, handlers {waiting} still wait (sent {sent})"
            # It learns when the server gives up on the client: write_wait after writes stall,
            # or pong_wait after the last pong, whichever comes first, not later.
            bound = max(FAST.write_wait or 0, FAST.pong_wait or 0) + (FAST.ping_period or 0) + 2
            latest = max(outcome.ended_at for outcome in outcomes) - opened
            assert latest < bound, latest
            assert all(count > 0 for count in sent)
            for each in deaf:
                each.close()
        await assert_serves_new_client(port)


async def test_a_handler_that_raises_closes_its_connection_with_1011_only(
    server_kind: ServerKind, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)

    @wschannels.messages(FAST)
    async def broken(receiver: Receiver[str]) -> None:
        await receiver.recv()
        raise RuntimeError("boom")

    async with serving(server_kind, broken, FAST) as port:
        async with bystander(port):
            for _ in range(3):
                async with client(port, "/fault") as ws:
                    await ws.send("go")
                    with contextlib.suppress(ConnectionClosed):
                        async with asyncio.timeout(10):
                            await ws.recv()
                    assert ws.close_code == 1011
        await assert_serves_new_client(port)
    failures = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert len(failures) == 3


CLIENTS = 20


def start_server_process(kind: ServerKind, ledger: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = python_env() | {"RELIABILITY_LEDGER": str(ledger)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.servers.registry", kind.name, "--port", str(port),
         "--routes", "tests.reliability.apps:ROUTES"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    wait_for_port(port, process)
    return process, port


async def test_sigterm_closes_every_busy_connection_after_what_was_queued(
    server_kind: ServerKind, tmp_path: Path
) -> None:
    """Every client gets every message its handler committed, then the server's shutdown code."""
    ledger = tmp_path / "ledger"
    ledger.touch()
    process, port = start_server_process(server_kind, ledger)
    try:
        received: dict[str, list[str]] = {str(i): [] for i in range(CLIENTS)}
        codes: dict[str, int | None] = {}
        busy = asyncio.Event()

        async def one(ident: str) -> None:
            async with client(port, "/stream", max_queue=None) as ws:
                await ws.send(ident)
                with contextlib.suppress(ConnectionClosed):
                    async for message in ws:
                        received[ident].append(str(message))
                        if all(len(r) >= 100 for r in received.values()):
                            busy.set()
                        await asyncio.sleep(0)
                codes[ident] = ws.close_code

        clients = [asyncio.create_task(one(str(i))) for i in range(CLIENTS)]
        await asyncio.wait_for(busy.wait(), 20)
        os.killpg(process.pid, signal.SIGTERM)
        _, pending = await asyncio.wait(clients, timeout=20)
        for task in pending:
            task.cancel()
        assert not pending, f"{len(pending)} clients were never closed: {sorted(codes.items())}"
        exit_code = await asyncio.to_thread(process.wait, 30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = process.stdout.read().decode(errors="replace") if process.stdout else ""
    # uvicorn re-raises the signal once it has shut down cleanly: -SIGTERM is its clean exit.
    assert exit_code in (0, -signal.SIGTERM), output[-2000:]
    entries = [line.split() for line in ledger.read_text().splitlines()]
    ended = {ident: how for ident, _, how in entries}
    assert sorted(ended, key=int) == sorted(received, key=int), "a handler never ended"
    assert set(ended.values()) == {"done"}, f"handlers that did not see done: {ended}"
    last = {ident: number for ident, number, _ in entries}
    for ident, messages in received.items():
        committed = [str(n) for n in range(int(last[ident]) + 1)]
        assert messages == committed, (
            f"client {ident}: got {len(messages)}, handler committed {len(committed)}"
        )
    assert set(codes.values()) == {server_kind.shutdown_code}




async def test_a_handler_sending_in_a_tight_loop_leaves_the_other_connections_served(
    server_kind: ServerKind, tmp_path: Path
) -> None:
    """A handler that only sends, as fast as its client reads, must not hold the event loop:
    another streaming client and an echo client are served beside it. (The server runs in its
    own process: starved, it would starve this test's event loop too.)"""
    counts: dict[str, int] = {}

    async def stream(name: str, port: int) -> None:
        async with client(port, "/tight", max_queue=None) as ws:
            await ws.send("go")
            counts[name] = 0
            with contextlib.suppress(ConnectionClosed):
                async for _ in ws:
                    counts[name] += 1
                    await asyncio.sleep(0)

    process, port = start_server_process(server_kind, tmp_path / "ledger")
    first = asyncio.create_task(stream("first", port))
    second: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(10):
            while counts.get("first", 0) == 0:
                await asyncio.sleep(0.05)
        second = asyncio.create_task(stream("second", port))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                async with client(port, "/echo", open_timeout=10) as ws:
                    await ws.send("echo")
                    counts["echo"] = int(await ws.recv() == "echo")
                while counts.get("second", 0) == 0:
                    await asyncio.sleep(0.05)
    finally:
        for task in (first, second):
            if task is not None:
                task.cancel()
        await asyncio.gather(first, *([second] if second else []), return_exceptions=True)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert counts.get("echo") == 1, f"the echo client was not served beside it: {counts}"
    assert counts.get("second", 0) > 0, f"a second streaming client got nothing: {counts}"
