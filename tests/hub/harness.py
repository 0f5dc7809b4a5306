"""Real parts for the hub's tests: websockets clients, redis-server, app processes.

In-process tests serve ``hubapp.create_app(hub)`` with uvicorn in the test's
own event loop; the tests across processes run ``hubapp.py`` as server
processes sharing a redis-server that the tests start on a free port.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import msgspec
import websockets
from websockets.asyncio.client import ClientConnection

from ..conftest import free_port
from ..redis_server import RedisServer as SharedRedisServer

HERE = Path(__file__).resolve().parent
STARTUP_TIMEOUT = 30.0  # seconds; generous for a loaded 2-core machine
WAIT = 15.0  # seconds to wait for a condition before failing


async def eventually(check: Callable[[], Any], within: float = WAIT, what: str = "") -> Any:
    """Wait until ``check()`` is truthy; returns its value."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.01)


def _joined_answer(received: list[Any]) -> Any:
    """The app's "joined" answer among what a client received (history may come before it)."""
    for item in received:
        if item == "joined" or (isinstance(item, dict) and item.get("action") == "ack"):
            return item
        if isinstance(item, dict) and item.get("action") == "cannot_recover":
            return item
    return None


class Client:
    """A real ``websockets`` client; a background task collects what it receives.

    With ``reading=False`` it reads nothing until :meth:`resume`, and the TCP
    receive buffer is kept tiny, so the server's writes back up quickly: a
    stalled consumer.
    """

    def __init__(self, ws: ClientConnection, reading: bool) -> None:
        self.ws = ws
        self.received: list[Any] = []
        self.close_code: int | None = None
        self._task: asyncio.Task[None] | None = None
        # A reading client takes the "joined" answer in connect(); a stalled one on resume.
        self._skip_joined = not reading
        self._arrived = asyncio.Event()
        if reading:
            self.resume()

    @classmethod
    async def connect(cls, port: int, path: str, *, reading: bool = True) -> Client:
        sock = None
        if not reading:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        ws = await websockets.connect(
            f"ws://127.0.0.1:{port}{path}",
            origin=websockets.Origin(f"http://127.0.0.1:{port}"),
            compression=None,
            max_queue=1 if not reading else 1024,
            max_size=None,
            sock=sock,
        )
        client = cls(ws, reading)
        if reading:
            joined = await client.wait_for(_joined_answer, "the 'joined' answer")
            client.received.remove(joined)
        return client

    def resume(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if self._skip_joined:
                    self._skip_joined = False
                    continue
                if isinstance(frame, str) and frame.startswith("{"):
                    self.received.append(msgspec.json.decode(frame))
                else:
                    self.received.append(frame)
                self._arrived.set()
        except websockets.ConnectionClosed:
            pass
        self.close_code = self.ws.close_code
        self._arrived.set()

    def positions(self) -> list[str]:
        return [item["pos"] for item in self.received if isinstance(item, dict) and "pos" in item]

    def texts(self) -> list[str]:
        return [item["text"] if isinstance(item, dict) else item for item in self.received]

    async def wait_for(self, check: Callable[[list[Any]], Any], what: str = "") -> Any:
        """Wait until ``check(received)`` is truthy, woken by each frame that arrives."""
        deadline = time.monotonic() + WAIT
        while True:
            self._arrived.clear()
            value = check(self.received)
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what or check}: {self.received!r}")
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass

    async def send(self, **note: Any) -> None:
        await self.ws.send(msgspec.json.encode(note).decode())

    async def close(self) -> None:
        await self.ws.close()
        if self._task is not None:
            await asyncio.wait_for(self._task, WAIT)


class RedisServer(SharedRedisServer):
    """The shared test redis-server, with what the hub's tests ask of it."""

    def numsub(self, room: str) -> int:
        return int(self.client().pubsub_numsub(f"wschannels:{{{room}}}:messages")[0][1])

    def channels(self) -> list[bytes]:
        return list(self.client().pubsub_channels("wschannels:{*}:messages"))


class AppProcess:
    """``hubapp.py`` served by uvicorn in a process of its own, on a Redis URL."""

    def __init__(self, log_dir: Path, redis_url: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.redis_url = redis_url
        self.env = env or {}
        self.log_path = log_dir / f"app-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=WAIT)

    def start(self, wait: bool = True) -> AppProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(HERE / "hubapp.py"), str(self.port), self.redis_url],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        if wait:
            self.wait_until_serving()
        return self

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"app process exited early:\n{self.log()}")
            try:
                self.http.get("/stats", timeout=1.0)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"app process not serving after {STARTUP_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        self.http.close()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=str(self.http.base_url), timeout=WAIT) as http:
            return await http.get(path)

    async def publish(self, room: str, *texts: str, plain: bool = False) -> httpx.Response:
        async with httpx.AsyncClient(base_url=str(self.http.base_url), timeout=WAIT) as http:
            return await http.post(f"/publish/{room}", json={"texts": texts, "plain": plain})

    async def stats(self) -> dict[str, Any]:
        response = await self.get("/stats")
        result: dict[str, Any] = response.json()
        return result

    async def count(self, room: str) -> dict[str, Any]:
        response = await self.get(f"/count/{room}")
        result: dict[str, Any] = response.json()
        return result


class Cluster(NamedTuple):
    """A redis-server and two app processes on it."""

    redis: RedisServer
    one: AppProcess
    two: AppProcess
