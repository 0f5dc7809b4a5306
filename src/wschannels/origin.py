"""The Origin check, done right: a full match, with the Host escaped."""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["origin_allowed"]


@lru_cache(maxsize=256)
def _compile(pattern: str, host: str) -> re.Pattern[str]:
    # The seed pasted the raw Host into the pattern: a Host header could inject
    # pattern syntax, and a dot in it matched any character.
    return re.compile(pattern.replace("{{host}}", re.escape(host)))


def origin_allowed(
    pattern: str, origin: str | None, host: str | None, *, require_origin: bool = False
) -> bool:
    """Whether a handshake with this Origin header may go on.

    A present ``origin`` must match ``pattern`` as a whole, ``{{host}}`` being
    ``host``. A missing one (``None``) is admitted unless ``require_origin``:
    browsers always send Origin on a WebSocket handshake, and cross-site
    WebSocket hijacking needs a browser, so a client without one (a script,
    a server, a test) is not the attack the check guards against.
    """
    if origin is None:
        return not require_origin
    return _compile(pattern, host or "").fullmatch(origin) is not None
