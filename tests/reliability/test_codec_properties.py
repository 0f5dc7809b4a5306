"""Every codec, whatever arrives: an item or an `InvalidMessage`, never another exception, and
an error whose text (what the log line shows) carries at most a short excerpt of the payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

import msgspec
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.logcheck import EXCERPT, longest_piece_of
from wschannels.codecs import BytesCodec, Codec, InvalidMessage, JsonCodec, RawCodec, TextCodec


class StructMessage(msgspec.Struct):
    text: str
    count: int
    tags: list[str] = []


@dataclass
class DataclassMessage:
    text: str
    count: int


class TypedDictMessage(TypedDict):
    text: str
    count: int


class PydanticMessage(pydantic.BaseModel):
    text: str
    count: int
    nested: dict[str, list[int]] = {}


CODECS: dict[str, Codec] = {
    "text": TextCodec(),
    "bytes": BytesCodec(),
    "raw": RawCodec(),
    "json-struct": JsonCodec(StructMessage),
    "json-dataclass": JsonCodec(DataclassMessage),
    "json-typeddict": JsonCodec(TypedDictMessage),
    "json-pydantic": JsonCodec(PydanticMessage),
    "json-dict": JsonCodec(dict),
    "json-list": JsonCodec(list),
    "json-any": JsonCodec(Any),
    "json-int": JsonCodec(int),
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def deep(draw: st.DrawFn) -> str:
    """Nesting from shallow to far past any recursion limit, balanced or not."""
    depth = draw(st.integers(1, 20_000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    inner = draw(st.sampled_from(["1", "", '"x"']))
    return opener * depth + inner + closer * draw(st.integers(0, depth))


@st.composite
def big_number(draw: st.DrawFn) -> str:
    digits = "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=1, max_size=50)))
    repeat = draw(st.integers(1, 2_000))
    number = (digits * repeat).lstrip("0") or "0"
    wrap = draw(st.sampled_from(["{}", '{{"text":"a","count":{}}}', "[{}]", "-{}", "0.{}e9999"]))
    return wrap.format(number)


@st.composite
def mutated_json(draw: st.DrawFn) -> str:
    """Valid JSON with a slice cut out or a byte changed: almost right is the usual attack."""
    text = msgspec.json.encode(draw(json_values)).decode()
    if len(text) < 2:
        return text
    start = draw(st.integers(0, len(text) - 1))
    end = draw(st.integers(start, len(text)))
    return text[:start] + draw(st.text(max_size=3)) + text[end:]


frames = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=2000),
    json_values.map(lambda v: msgspec.json.encode(v).decode()),
    json_values.map(msgspec.json.encode),
    deep(),
    big_number(),
    mutated_json(),
    st.builds(lambda p: '{"text":"' + p + '","count":1}', st.text(max_size=500)),
    st.integers(100, 70_000).map(lambda n: '{"text":' + "9" * n + "}"),
    st.integers(100, 70_000).map(lambda n: '"' + "\\ud800" * (n // 6) + '"'),
)


@pytest.mark.parametrize("name", list(CODECS))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.data_too_large])  # fmt: skip
@given(frame=frames)
def test_decoding_anything_gives_an_item_or_an_invalid_message_with_a_short_reason(
    name: str, frame: str | bytes
) -> None:
    codec = CODECS[name]
    try:
        codec.decode(frame)
    except InvalidMessage as error:
        assert error.payload == frame  # the whole payload stays available to the handler
        text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
        assert longest_piece_of(text, str(error)) <= EXCERPT, str(error)[:300]
        assert len(str(error)) <= 1000, str(error)[:300]
