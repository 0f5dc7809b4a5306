"""Handshakes refused on purpose, kept out of the server's error log.

uvicorn's ``websockets-sansio`` protocol (through 0.54 at least) logs
``ERROR: ASGI callable returned without completing handshake.`` after every
handshake an app refuses with the ``websocket.http.response`` extension:
sending the response body closes the transport but never marks the
handshake complete, so when the app returns ``run_asgi`` takes it for an app
that forgot to answer (it then tries a 500, which it skips because a
response was already sent). The client gets the 403 we sent; only the log
line is wrong, and it reads like a crash.

The fix here is as narrow as the fault: a refusal marks its own connection
(a context variable, set in the task uvicorn runs the app in), and a filter
on uvicorn's error logger drops that one message only for a connection so
marked. An app that really returns without answering, or raises, is still
logged. The filter is installed by the first refusal, so it works however
uvicorn was started (``run()``, ``uvicorn_config()`` or ``uvicorn module:app``),
and it does nothing once uvicorn stops logging the line.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

__all__ = ["INCOMPLETE_HANDSHAKE", "RefusedHandshakeFilter", "refused_on_purpose"]

INCOMPLETE_HANDSHAKE = "ASGI callable returned without completing handshake."
"""The line uvicorn logs at ERROR when an app returns before accepting or refusing."""

_refused: ContextVar[bool] = ContextVar("wschannels_refused_handshake", default=False)


class RefusedHandshakeFilter(logging.Filter):
    """Drops uvicorn's incomplete-handshake error for a handshake we refused on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == INCOMPLETE_HANDSHAKE and _refused.get())


_FILTER = RefusedHandshakeFilter()


def refused_on_purpose() -> None:
    """Mark the current connection as refused by us, and make sure uvicorn's log knows."""
    _refused.set(True)
    logging.getLogger("uvicorn.error").addFilter(_FILTER)  # a no-op once installed
