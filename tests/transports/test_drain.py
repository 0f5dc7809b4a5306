"""Graceful shutdown: every connection gets what was queued for it, then 1001; handlers see done.

The end-to-end tests send SIGTERM to a real server process (tests/transports/drain_app.py:
``run_picows``, ``run_websockets``, aiohttp's ``web.run_app``, ``wschannels.run``) with 25
clients whose messages are in flight; the others close ``serve_*`` servers in the test's own
loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

import wschannels
from tests.conftest import free_port
from tests.rawws import RawClient
from wschannels import CloseCode, Done, Options, Receiver, Sender
from wschannels.engine import Connection
from wschannels.handler import spec_of
from wschannels.servers import drain as drain_module
from wschannels.servers.drain import Drain
from wschannels.servers.picows import serve_picows
from wschannels.servers.websockets import serve_websockets
from wschannels.session import open_connection, serve

APP = Path(__file__).with_name("drain_app.py")
CLIENTS = 25
SHUTDOWN_TIMEOUT = 5.0  # drain_app.py's


async def flood_client(port: int, client_id: int) -> ClientConnection:
    """A client that reads nothing until told: a small receive buffer, a small queue."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return await connect(
        f"ws://127.0.0.1:{port}/flood/{client_id}",
        sock=sock,
        origin=Origin(f"http://127.0.0.1:{port}"),
        compression=None,
        max_queue=4,
    )


async def read_all(ws: ClientConnection) -> tuple[list[int], int | None]:
    numbers: list[int] = []
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(30):
            async for message in ws:
                assert isinstance(message, str)
                numbers.append(int(message[:8]))
    return numbers, ws.close_code


async def wait_until_listening(port: int, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(30):
        while True:
            assert process.returncode is None, "the server process ended"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return


@pytest.mark.parametrize("server", ["picows", "websockets", "aiohttp", "uvicorn"])
async def test_sigterm_drains_every_client_then_closes_with_1001_and_exits(server: str) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(APP),
        server,
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    try:
        await wait_until_listening(port, process)
        clients = [await flood_client(port, index) for index in range(CLIENTS)]
        await asyncio.sleep(0.5)  # every handler fills its client's buffers and its queue
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        results = await asyncio.gather(*(read_all(ws) for ws in clients))
        async with asyncio.timeout(SHUTDOWN_TIMEOUT + 10):
            stdout, stderr = await process.communicate()
        exited = time.monotonic() - signalled
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # uvicorn re-raises the signal once it has shut down cleanly: -SIGTERM is its clean exit.
    clean = (0, -signal.SIGTERM) if server == "uvicorn" else (0,)
    assert process.returncode in clean, stderr.decode()[-2000:]
    assert exited <= SHUTDOWN_TIMEOUT + 5
    sent = dict(line.split() for line in stdout.decode().splitlines())
    assert sorted(sent, key=int) == [str(index) for index in range(CLIENTS)]  # all saw done
    for index, (numbers, code) in enumerate(results):
        assert code == CloseCode.GOING_AWAY
        assert numbers == list(range(int(sent[str(index)]))), f"client {index}"
        assert len(numbers) > 4  # messages were in flight, not only the client's queue
    if server in SERVE:  # aiohttp and uvicorn print their own lines (turned off here)
        assert f"serving on ws://127.0.0.1:{port} ({server})" in stderr.decode()


@wschannels.messages(Options(skip_logging=True))
async def stay(receiver: Receiver[str], sender: Sender[str], done: Done) -> None:
    await sender.send("ready")
    await done.recv()


SERVE = {"picows": serve_picows, "websockets": serve_websockets}


@pytest.mark.parametrize("name", list(SERVE))
async def test_close_ends_every_connection_with_1001_leaves_no_task_and_stops_listening(
    name: str,
) -> None:
    handlers_done = 0

    @wschannels.messages()
    async def wait(receiver: Receiver[str], done: Done) -> None:
        nonlocal handlers_done
        await done.recv()
        handlers_done += 1

    server: Any = await SERVE[name]({"/": wait}, "127.0.0.1", 0)
    url, origin = f"ws://127.0.0.1:{server.port}/", Origin(f"http://127.0.0.1:{server.port}")
    clients = [await connect(url, origin=origin) for _ in range(3)]
    async with asyncio.timeout(10):
        while server.connections < 3:
            await asyncio.sleep(0.01)
    server.close()
    await asyncio.wait_for(server.wait_closed(), 10)
    assert handlers_done == 3
    assert server.connections == 0
    for ws in clients:
        _, code = await read_all(ws)
        assert code == CloseCode.GOING_AWAY
    assert [task for task in asyncio.all_tasks() if task is not asyncio.current_task()] == []
    with pytest.raises(OSError):
        async with connect(url, origin=origin):
            pass


@pytest.mark.parametrize("name", list(SERVE))
async def test_a_handshake_during_the_shutdown_gets_503(name: str) -> None:
    server: Any = await SERVE[name]({"/": stay}, "127.0.0.1", 0)
    async with connect(
        f"ws://127.0.0.1:{server.port}/", origin=Origin(f"http://127.0.0.1:{server.port}")
    ) as ws:
        assert await ws.recv() == "ready"
        # TCP accepted before the close, the handshake sent after it.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await asyncio.sleep(0.05)
        server.close()
        late = await RawClient.handshake(reader, writer, server.port)
        assert late.response.status_code == 503
        await late.aclose()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CloseCode.GOING_AWAY
    await asyncio.wait_for(server.wait_closed(), 10)


@pytest.mark.parametrize("name", list(SERVE))
async def test_a_handler_that_ignores_the_shutdown_is_cancelled_after_the_timeout(
    name: str,
) -> None:
    cancelled = asyncio.Event()

    @wschannels.messages(Options(skip_logging=True))
    async def stubborn(sender: Sender[str]) -> None:
        try:
            await sender.send("ready")
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server: Any = await SERVE[name]({"/": stubborn}, "127.0.0.1", 0, shutdown_timeout=0.3)
    client = await RawClient.connect(server.port)  # never answers the close
    frame = await client.next_frame()
    assert frame is not None and frame.data == b"ready"
    server.close()
    await asyncio.wait_for(server.wait_closed(), 10)
    assert cancelled.is_set()
    assert server.connections == 0
    await client.aclose()


class _Recording:
    """The engine's transport for the batch test: it records when each close was asked for.

    Each close is recorded with the loop turn it came in (``turn[0]``) and the time.
    """

    def __init__(self, closes: list[tuple[int, float]], turn: list[int]) -> None:
        self.closes = closes
        self.turn = turn
        self.connection: Connection | None = None

    def write(self, frame: Any) -> None:
        return None

    def close(self, code: int) -> None:
        self.closes.append((self.turn[0], asyncio.get_running_loop().time()))
        assert self.connection is not None
        asyncio.get_running_loop().call_soon(self.connection.peer_closed, code)

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def ping(self, on_pong: Any) -> None:
        pass


async def test_the_closes_go_out_in_batches() -> None:
    spec = spec_of(stay)
    drain = Drain(shutdown_timeout=10)
    closes: list[tuple[int, float]] = []
    count = drain_module.CLOSE_BATCH * 2 + 50
    loop = asyncio.get_running_loop()
    turn = [0]

    def count_turns() -> None:
        turn[0] += 1
        if len(drain) or not closes:
            loop.call_soon(count_turns)

    async def session() -> None:
        transport = _Recording(closes, turn)
        connection = open_connection(spec, transport, "test")
        transport.connection = connection
        with drain.session(connection):
            await serve(spec, connection, {})

    tasks = [asyncio.create_task(session()) for _ in range(count)]
    await asyncio.sleep(0.01)
    assert len(drain) == count
    loop.call_soon(count_turns)
    await asyncio.wait_for(drain.drain(), 10)
    assert all(task.done() for task in tasks) and len(drain) == 0
    # Three batches (100, 100, 50), each in one loop turn, at least BATCH_PAUSE apart.
    batches: dict[int, list[float]] = {}
    for at_turn, at in closes:
        batches.setdefault(at_turn, []).append(at)
    assert [len(batch) for batch in batches.values()] == [100, 100, 50]
    assert all(
        later[0] - earlier[0] >= drain_module.BATCH_PAUSE * 0.9
        for earlier, later in itertools.pairwise(batches.values())
    )
