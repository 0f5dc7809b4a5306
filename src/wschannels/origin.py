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


def origin_allowed(pattern: str, origin: str | None, host: str | None) -> bool:
    """Whether ``origin`` matches ``pattern`` as a whole, ``{{host}}`` being ``host``.

    A missing Origin header counts as the empty string, so the default pattern
    rejects it while a permissive one such as ``.*`` admits it.
    """
    return _compile(pattern, host or "").fullmatch(origin or "") is not None
