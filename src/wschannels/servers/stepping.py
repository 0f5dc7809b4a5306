"""Running a server's awaitable API without a task, for as long as it does not wait.

Servers expose writes (and ASGI reads) as coroutines, but a write to a
socket with room, or a read with data waiting, finishes without ever
suspending. :func:`step` runs one that far synchronously: a write costs no
task. Only when it has to wait does :func:`finish` drive the rest in a
task. Measured with the echo benchmark (``python -m bench --scenarios
echo``), a task per write costs one more task switch per message.

Only for awaitables that do not use the current task (no ``asyncio.timeout``
on the way): stepped, they run inside whichever task called the adapter.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from types import CoroutineType
from typing import Any

__all__ = ["Steppable", "begin", "finish", "run_soon", "step", "when_ready"]


class _Steps:
    """A non-coroutine awaitable's iterator, stepped like a coroutine (``send(None)``)."""

    __slots__ = ("_iterator",)

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self._iterator = awaitable.__await__()

    def send(self, _: None) -> Any:
        return next(self._iterator)

    def close(self) -> None:
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()


Steppable = Coroutine[Any, Any, Any] | _Steps


def begin(awaitable: Awaitable[Any]) -> Steppable:
    """What :func:`step` resumes: a coroutine itself, or any other awaitable's iterator.

    Some servers (granian) hand out awaitables that are not coroutines.
    """
    if type(awaitable) is CoroutineType:
        return awaitable
    return _Steps(awaitable)


def step(steps: Steppable) -> tuple[bool, Any]:
    """Resume an awaitable until it returns or waits: (True, result) or (False, what it waits on).

    What it waits on is a future, or another object with ``add_done_callback``
    that an asyncio task would wait on, or None for a bare ``yield`` (one loop
    turn). Raises what the awaitable raises.
    """
    try:
        yielded = steps.send(None)
    except StopIteration as stop:
        return True, stop.value
    if yielded is not None:
        # What an asyncio task does with a future it is handed (asyncio's own protocol).
        yielded._asyncio_future_blocking = False
    return False, yielded


def when_ready(waited: Any, callback: Callable[[Any], None]) -> None:
    """Call ``callback`` once what a stepped awaitable waits on is ready."""
    if waited is None:
        asyncio.get_running_loop().call_soon(callback, None)
    else:
        waited.add_done_callback(callback)


async def finish(steps: Steppable, waited: Any) -> Any:
    """Drive an awaitable that :func:`step` started to its end, as a task would; its result."""
    loop = asyncio.get_running_loop()
    while True:
        ready: asyncio.Future[None] = loop.create_future()
        when_ready(waited, functools.partial(_set_ready, ready))
        try:
            await ready
        except asyncio.CancelledError:
            if waited is None or not waited.cancel():
                raise  # the awaitable sees the cancellation when resumed, if it can
        done, waited = step(steps)
        if done:
            return waited


def _set_ready(ready: asyncio.Future[None], _: object) -> None:
    if not ready.done():
        ready.set_result(None)


def run_soon(awaitable: Awaitable[Any]) -> asyncio.Task[Any] | None:
    """Step ``awaitable``; None if it finished, else a task finishing it (with its result)."""
    steps = begin(awaitable)
    done, waited = step(steps)
    if done:
        return None
    return asyncio.get_running_loop().create_task(finish(steps, waited))
