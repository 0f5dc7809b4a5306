"""WebSocket close codes (RFC 6455 section 7.4 and the IANA registry)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CloseCode", "answer_to_close", "check_sendable", "valid_from_peer"]


class CloseCode(IntEnum):
    """Close codes, named as the seed's gorilla constants are, in Python style."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_FRAME_PAYLOAD_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_SERVER_ERR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


# Reserved codes that only describe a close locally and must never appear in a close frame.
_NOT_ON_THE_WIRE = frozenset({1004, 1005, 1006, 1015})


def check_sendable(code: int) -> int:
    """Return ``code`` if it may be sent in a close frame.

    Raises:
        ValueError: a reserved code (1004, 1005, 1006, 1015) or one outside
            1000-1014 and 3000-4999.
    """
    if isinstance(code, bool) or not isinstance(code, int):
        raise ValueError(f"a close code must be an int, got {code!r}")
    if code in _NOT_ON_THE_WIRE or not (1000 <= code <= 1014 or 3000 <= code <= 4999):
        raise ValueError(
            f"close code {code} may not be sent on the wire; use 1000-1014 "
            "(not 1004, 1005, 1006) or an application code in 3000-4999"
        )
    return int(code)


def valid_from_peer(code: int) -> bool:
    """Whether a close frame from the client may carry ``code`` (RFC 6455 section 7.4).

    1000-1003 and 1007-1014 are defined for the wire, 3000-4999 belong to
    libraries and applications; anything else (0, 999, 1004-1006, 1015,
    1016-2999, 5000 and up) is a protocol error.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def answer_to_close(code: int | None) -> tuple[int, int]:
    """For the client's close frame carrying ``code`` (None: no code), (the code the
    connection ended with, the code to answer with).

    A valid code is echoed; no code is answered with 1000 and recorded as 1005;
    a code the client may not send (see :func:`valid_from_peer`) is a protocol
    error, answered and recorded as 1002.
    """
    if code is None:
        return CloseCode.NO_STATUS_RCVD, CloseCode.NORMAL_CLOSURE
    if not valid_from_peer(code):
        return CloseCode.PROTOCOL_ERROR, CloseCode.PROTOCOL_ERROR
    return code, code
