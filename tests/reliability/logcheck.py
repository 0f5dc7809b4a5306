"""Log lines carry at most a short excerpt of what a client sent."""

from __future__ import annotations

import logging
from collections.abc import Iterable

# The longest piece of client data a log line may carry (the engine cuts excerpts to ~200).
EXCERPT = 200


def record_text(record: logging.LogRecord) -> str:
    """A record as a handler writes it: the message, then any traceback."""
    text = record.getMessage()
    if record.exc_info:
        text += "\n" + logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        text += "\n" + record.exc_text
    return text


def longest_piece_of(payload: str, text: str) -> int:
    """The length of the longest run of ``payload`` found in ``text`` (bisected on prefixes
    of windows of the payload, which is enough for the repetitive payloads of these tests)."""
    if not payload or not text:
        return 0
    best = 0
    step = max(1, EXCERPT // 2)
    for start in range(0, len(payload), step):
        low, high = best, len(payload) - start
        while low < high:
            middle = (low + high + 1) // 2
            if payload[start : start + middle] in text:
                low = middle
            else:
                high = middle - 1
        best = max(best, low)
        if best > EXCERPT:
            break
    return best


def assert_logs_short(records: Iterable[logging.LogRecord], payloads: Iterable[str]) -> None:
    """No record carries more than ``EXCERPT`` characters of any of ``payloads``."""
    texts = [record_text(record) for record in records]
    for payload in payloads:
        for text in texts:
            piece = longest_piece_of(payload, text)
            assert piece <= EXCERPT, (
                f"a log line carries {piece} characters of client data: {text[:300]!r}..."
            )
