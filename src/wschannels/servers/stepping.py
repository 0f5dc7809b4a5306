"""Running a server's coroutine API without a task, for as long as it does not wait.

Servers expose writes (and ASGI reads) as coroutines, but a write to a
socket with room, or a read with data waiting, finishes without ever
suspending. :func:`step` runs a coroutine that far synchronously: a write
costs no task. Only when it has to wait does :func:`finish` drive the rest
in a task. Measured with the echo benchmark (``python -m bench --scenarios
echo``), a task per write costs one more task switch per message.

Only for coroutines that do not use the current task (no ``asyncio.timeout``
on the way): stepped, they run inside whichever task called the adapter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["finish", "run_soon", "step", "when_ready"]


def step(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Resume ``coro`` until it returns or waits: (True, its result) or (False, what it waits on).

    What it waits on is a future (or None for a bare ``yield``, asking for
    one loop turn). Raises what the coroutine raises.
    """
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    if yielded is not None:
        yielded._asyncio_future_blocking = False
    return False, yielded


def when_ready(waited: Any, callback: Callable[[Any], None]) -> None:
    """Call ``callback`` once what a stepped coroutine waits on is ready."""
    if waited is None:
        asyncio.get_running_loop().call_soon(callback, None)
    else:
        waited.add_done_callback(callback)


async def finish(coro: Coroutine[Any, Any, Any], waited: Any) -> Any:
    """Drive a coroutine that :func:`step` started to its end, as a task would; its result."""
    while True:
        if waited is None:
            await asyncio.sleep(0)
        else:
            try:
                await asyncio.wait((waited,))
            except asyncio.CancelledError:
                waited.cancel()  # the coroutine sees the cancellation when resumed
        done, waited = step(coro)
        if done:
            return waited


def run_soon(coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any] | None:
    """Step ``coro``; None if it finished, else a task finishing it (with its result)."""
    done, waited = step(coro)
    if done:
        return None
    return asyncio.get_running_loop().create_task(finish(coro, waited))
