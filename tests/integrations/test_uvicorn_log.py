"""Under uvicorn, a handshake we refuse on purpose logs no error; real failures still do."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

import wschannels
from tests.conftest import Server, serve
from wschannels import Sender
from wschannels.servers.refusals import INCOMPLETE_HANDSHAKE

WAIT = 10.0


class Records(logging.Handler):
    """Every record a logger handles, kept for the test to read."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [record.getMessage() for record in self.records]


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[tuple[Server, Records]]:
    """A uvicorn server, and what its error logger writes from then on.

    The handler is added once the server is configured (uvicorn's logging set-up
    removes the handlers it finds) and stays until the server has stopped.
    """
    handler = Records()
    logger = logging.getLogger("uvicorn.error")
    try:
        async with serve(app) as server:
            logger.addHandler(handler)
            yield server, handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def wschannels_errors() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("wschannels")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@wschannels.messages()
async def greet(sender: Sender[str]) -> None:
    await sender.send("welcome")


@wschannels.messages()
async def crash(sender: Sender[str]) -> None:
    raise RuntimeError("the handler broke")


async def forgets_to_answer(websocket: WebSocket) -> None:
    """Neither accepts nor refuses: the mistake uvicorn's line is there to report."""


def app() -> Starlette:
    return Starlette(
        routes=[
            WebSocketRoute("/greet", greet),
            WebSocketRoute("/crash", crash),
            WebSocketRoute("/forgets", forgets_to_answer),
        ]
    )


async def refused(url: str) -> int:
    with pytest.raises(InvalidStatus) as refusal:
        async with connect(url, origin=Origin("http://evil.example"), open_timeout=WAIT):
            pass
    return refusal.value.response.status_code


async def settle(records: Records, wanted: str | None = None) -> None:
    """Let uvicorn finish the connection: it logs after the app returns."""
    async with asyncio.timeout(WAIT):
        while wanted is not None and not any(wanted in m for m in records.messages()):
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)


async def test_a_refused_origin_logs_no_incomplete_handshake_error(
    wschannels_errors: Records,
) -> None:
    async with serving(app()) as (server, uvicorn_errors):
        for _ in range(3):
            assert await refused(server.ws + "/greet") == 403
        await settle(uvicorn_errors)

    assert INCOMPLETE_HANDSHAKE not in uvicorn_errors.messages()
    assert not [r for r in uvicorn_errors.records if r.levelno >= logging.ERROR]
    assert sum("not allowed" in m for m in wschannels_errors.messages()) == 3


async def test_a_refusal_under_fastapi_logs_no_incomplete_handshake_error() -> None:
    api = FastAPI()
    api.websocket("/greet")(greet)

    async with serving(api) as (server, uvicorn_errors):
        assert await refused(server.ws + "/greet") == 403
        await settle(uvicorn_errors)

    assert INCOMPLETE_HANDSHAKE not in uvicorn_errors.messages()


async def test_an_app_that_never_answers_is_still_logged_after_a_refusal() -> None:
    async with serving(app()) as (server, uvicorn_errors):
        assert await refused(server.ws + "/greet") == 403
        with pytest.raises(InvalidStatus) as broken:
            async with connect(server.ws + "/forgets", open_timeout=WAIT):
                pass
        await settle(uvicorn_errors, INCOMPLETE_HANDSHAKE)

    assert broken.value.response.status_code == 500
    assert uvicorn_errors.messages().count(INCOMPLETE_HANDSHAKE) == 1


async def test_a_handler_crash_is_still_logged_with_its_traceback(
    wschannels_errors: Records,
) -> None:
    async with serve(app()) as server, connect(server.ws + "/crash", open_timeout=WAIT) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), WAIT)
        assert ws.close_code == 1011

    failures = [r for r in wschannels_errors.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert "the handler broke" in str(failures[0].exc_info[1])
