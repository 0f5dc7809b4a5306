"""Per-binding options, with the seed's names and defaults in Python units."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from enum import IntEnum

__all__ = ["LogLevel", "Options"]


class LogLevel(IntEnum):
    """How much a connection logs: lines at or below the level are written (the seed's 0-3)."""

    ERROR = 0
    WARNING = 1
    INFO = 2
    DEBUG = 3

    @property
    def logging_level(self) -> int:
        """The matching :mod:`logging` level."""
        return _LOGGING_LEVELS[self]


_LOGGING_LEVELS = {
    LogLevel.ERROR: logging.ERROR,
    LogLevel.WARNING: logging.WARNING,
    LogLevel.INFO: logging.INFO,
    LogLevel.DEBUG: logging.DEBUG,
}


class _FromPongWait(float):
    """The default ``ping_period``: ``pong_wait`` * 8 / 10, as in the seed (48.0 by default)."""

    __slots__ = ()


_PING_FROM_PONG_WAIT = _FromPongWait(48.0)


@dataclass(frozen=True, slots=True)
class Options:
    """How a binding runs its connections. Bad values fail here, naming the field.

    Unlike the seed, a value set explicitly is kept even when it is zero: an
    unbuffered channel (``send_channel_buffer=0``) or a write that never times
    out (``write_wait=None``) can be asked for.

    Attributes:
        logger: where log lines go.
        log_level: lines at or below this level are written.
        skip_logging: no logging at all.
        write_wait: seconds a write may take before the connection is given up
            (``None``: never time out).
        pong_wait: seconds of silence from the peer before it is considered gone.
        ping_period: seconds between pings; must be shorter than ``pong_wait``.
            When not given it is ``pong_wait`` * 8 / 10, so setting ``pong_wait``
            alone keeps the two consistent.
        max_message_size: largest message read, in bytes; a bigger one closes
            the connection with 1009.
        send_channel_buffer: items the sender holds before ``send`` waits.
        recv_channel_buffer: messages the receiver holds before reading pauses.
        allowed_origin: regular expression the ``Origin`` header must match as a
            whole, when there is one; ``{{host}}`` stands for the request's Host,
            escaped.
        require_origin: refuse a handshake without an ``Origin`` header (403).
            Off by default: browsers always send one, and a client that sends
            none (a script, another server) cannot be used for cross-site
            WebSocket hijacking.
        close_on_invalid_message: close with 1007 when a message cannot be
            decoded, instead of reporting it on ``errors`` and going on.
        errors_channel_buffer: errors held for the handler; older ones are
            dropped (and counted) when it does not read them.
        max_messages_per_second: a client sending faster than this, on average
            over a second (bursts up to that many pass), is closed with 1008
            (policy violation) and ``RateLimited`` is reported. None: no limit.
        max_bytes_per_second: the same for payload bytes (characters of text
            messages). None: no limit.
    """

    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("wschannels"))
    log_level: LogLevel = LogLevel.INFO
    skip_logging: bool = False
    write_wait: float | None = 60.0
    pong_wait: float | None = 60.0
    ping_period: float | None = _PING_FROM_PONG_WAIT
    max_message_size: int = 65536
    send_channel_buffer: int = 10
    recv_channel_buffer: int = 10
    allowed_origin: str = r"https?://{{host}}$"
    require_origin: bool = False
    close_on_invalid_message: bool = False
    errors_channel_buffer: int = 16
    max_messages_per_second: float | None = None
    max_bytes_per_second: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.logger, logging.Logger):
            raise TypeError(f"Options.logger must be a logging.Logger, got {self.logger!r}")
        try:
            object.__setattr__(self, "log_level", LogLevel(self.log_level))
        except ValueError:
            raise ValueError(
                f"Options.log_level must be a LogLevel (0-3), got {self.log_level!r}"
            ) from None
        if type(self.ping_period) is _FromPongWait:
            derived = 48.0 if self.pong_wait is None else self.pong_wait * 0.8
            object.__setattr__(self, "ping_period", derived)
        for name in ("max_messages_per_second", "max_bytes_per_second"):
            _check_rate(name, getattr(self, name))
        for name in ("write_wait", "pong_wait", "ping_period"):
            _check_seconds(name, getattr(self, name))
        if (
            self.ping_period is not None
            and self.pong_wait is not None
            and self.ping_period >= self.pong_wait
        ):
            raise ValueError(
                f"Options.ping_period ({self.ping_period}) must be shorter than "
                f"Options.pong_wait ({self.pong_wait}), or the peer is dropped between pings"
            )
        _check_count("max_message_size", self.max_message_size, minimum=0)
        _check_count("send_channel_buffer", self.send_channel_buffer, minimum=0)
        _check_count("recv_channel_buffer", self.recv_channel_buffer, minimum=0)
        _check_count("errors_channel_buffer", self.errors_channel_buffer, minimum=1)
        if not isinstance(self.allowed_origin, str):
            raise TypeError(
                f"Options.allowed_origin must be a str, got {self.allowed_origin!r}"
            )
        if not isinstance(self.require_origin, bool):
            raise TypeError(
                f"Options.require_origin must be a bool, got {self.require_origin!r}"
            )
        try:
            re.compile(self.allowed_origin.replace("{{host}}", "host"))
        except re.error as error:
            raise ValueError(
                f"Options.allowed_origin {self.allowed_origin!r} is not a valid "
                f"regular expression: {error}"
            ) from None


def _check_rate(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"Options.{name} must be a rate > 0 per second or None, got {value!r}")


def _check_seconds(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"Options.{name} must be a number of seconds > 0 or None, got {value!r}")


def _check_count(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Options.{name} must be an int >= {minimum}, got {value!r}")
