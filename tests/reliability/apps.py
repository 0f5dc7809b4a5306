"""Routes a server process serves for the SIGTERM test (`--routes tests.reliability.apps:ROUTES`).

`/tight` is the same stream without that yield, `/echo` an echo.

`/stream` reads the client's id, then sends 0, 1, 2, ... as fast as the connection takes them
until `done`; it then appends "<id> <last number committed to the sender> <how it ended>" to the
file named by $RELIABILITY_LEDGER ("done", or the exception that ended it), so the test knows
exactly what the client must have received.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import wschannels
from wschannels import ChannelClosed, Done, Receiver, Send, Sender, select

OPTIONS = wschannels.Options(allowed_origin=".*", skip_logging=True)


@wschannels.messages(OPTIONS)
async def stream(receiver: Receiver[str], sender: Sender[str], done: Done) -> None:
    ident = await receiver.recv()
    index = 0
    how = "done"
    try:
        while True:
            chosen, _, _ = await select(Send(sender, str(index)), done, biased=True)
            if chosen is done:
                break
            index += 1
            # Paced, so the clients keep up and nothing piles up in TCP buffers; and a ready
            # send does not suspend, so an unpaced loop would keep every other connection
            # waiting (`/tight`, checked in tests/reliability/test_faults.py).
            await asyncio.sleep(0.002)
    except ChannelClosed:
        pass  # the connection is over: the sender is closed, as done is ready
    except BaseException as error:
        how = type(error).__name__
        raise
    finally:
        # One short line at the end of a connection: not worth a thread.
        with Path(os.environ["RELIABILITY_LEDGER"]).open("a") as ledger:  # noqa: ASYNC230
            ledger.write(f"{ident} {index - 1} {how}\n")


@wschannels.messages(OPTIONS)
async def tight(receiver: Receiver[str], sender: Sender[str], done: Done) -> None:
    """Sends as fast as the connection takes it, with nothing else that waits."""
    await receiver.recv()
    index = 0
    while True:
        chosen, _, _ = await select(Send(sender, str(index)), done)
        if chosen is done:
            return
        index += 1


@wschannels.messages(OPTIONS)
async def echo(receiver: Receiver[str], sender: Sender[str]) -> None:
    async for message in receiver:
        await sender.send(message)


ROUTES = {"/stream": stream, "/tight": tight, "/echo": echo}
