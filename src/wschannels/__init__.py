"""wschannels: a WebSocket bound to Go-style channels, for asyncio.

A handler declares a receiver of typed messages, a sender, a ``done``
channel, a ``disconnect`` channel that takes a close code and an ``errors``
channel, and runs its whole connection from one :func:`select` loop::

    @wschannels.json(Message)
    async def echo(receiver: Receiver[Message], sender: Sender[Message], done: Done) -> None:
        while True:
            chosen, message, ok = await select(receiver, done)
            if chosen is done:
                return
            await sender.send(message)
"""

from .bindings import bytes_messages, json, messages, raw
from .channels import (
    Channel,
    ChannelClosed,
    ChannelStatistics,
    DeferredSend,
    SelectResult,
    Send,
    Ticker,
    after,
    select,
    ticker,
    try_select,
)
from .close_codes import CloseCode
from .engine import ConnectionStatistics, State
from .errors import (
    InvalidMessage,
    KeepaliveTimeout,
    MessageTooBig,
    RateLimited,
    ReceiverStalled,
    WouldBlock,
    WriteFailed,
    WriteTimeout,
    WschannelsError,
)
from .extras import MissingExtra, require
from .hub import (
    BackendUnavailable,
    CannotRecover,
    Hub,
    HubStatistics,
    Position,
    PresenceEvent,
    SlowConsumer,
    SlowConsumerPolicy,
)
from .metrics import Stats, aiohttp_metrics, metrics_endpoint, stats
from .options import LogLevel, Options
from .servers.asgi import asgi
from .servers.uvicorn import run, uvicorn_config
from .views import Disconnect, Done, Errors, Receiver, Sender

_PICOWS_NAMES = frozenset({"PicowsServer", "run_picows", "serve_picows"})


def __getattr__(name: str) -> object:
    """The picows adapter, imported on first use: picows is an optional extra."""
    if name in _PICOWS_NAMES:
        require("picows", "picows", f"wschannels.{name}")
        from .servers import picows

        return getattr(picows, name)
    raise AttributeError(f"module 'wschannels' has no attribute {name!r}")


__all__ = [
    "BackendUnavailable",
    "CannotRecover",
    "Channel",
    "ChannelClosed",
    "ChannelStatistics",
    "CloseCode",
    "ConnectionStatistics",
    "DeferredSend",
    "Disconnect",
    "Done",
    "Errors",
    "Hub",
    "HubStatistics",
    "InvalidMessage",
    "KeepaliveTimeout",
    "LogLevel",
    "MessageTooBig",
    "MissingExtra",
    "Options",
    "PicowsServer",
    "Position",
    "PresenceEvent",
    "RateLimited",
    "Receiver",
    "ReceiverStalled",
    "SelectResult",
    "Send",
    "Sender",
    "SlowConsumer",
    "SlowConsumerPolicy",
    "State",
    "Stats",
    "Ticker",
    "WouldBlock",
    "WriteFailed",
    "WriteTimeout",
    "WschannelsError",
    "after",
    "aiohttp_metrics",
    "asgi",
    "bytes_messages",
    "json",
    "messages",
    "metrics_endpoint",
    "raw",
    "run",
    "run_picows",
    "select",
    "serve_picows",
    "stats",
    "ticker",
    "try_select",
    "uvicorn_config",
]
