"""How each binding turns frames into items and items into frames.

A frame is ``str`` (a text frame) or ``bytes`` (a binary frame). Whatever a
client sends, decoding gives an item or raises :class:`InvalidMessage`
(reported on the handler's ``errors`` channel with the raw payload), never
another exception; encoding errors raise at the ``send`` call.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, ClassVar, Final, Literal

import msgspec

from .errors import InvalidMessage

__all__ = [
    "BytesCodec",
    "Codec",
    "Frame",
    "InvalidMessage",
    "JsonCodec",
    "RawCodec",
    "TextCodec",
    "WireKind",
    "encode_for_kind",
]

Frame = str | bytes
WireKind = Literal["json", "plain"]


class Codec:
    """Base of the four codecs: ``item_type`` for annotation checks, ``wire_kind`` for fan-out.

    ``wire_kind`` groups codecs that produce the same frame for the same item,
    so a room shared by different bindings encodes a message once per kind.
    """

    __slots__ = ("item_type",)
    wire_kind: ClassVar[WireKind] = "plain"

    def __init__(self, item_type: Any = Any) -> None:
        self.item_type = item_type

    def decode(self, frame: Frame) -> Any:
        """Turn a received frame into an item. Raises :class:`InvalidMessage`."""
        raise NotImplementedError

    def encode(self, item: Any) -> Frame:
        """Turn an item into a frame. Raises ``TypeError`` / ``ValueError``."""
        raise NotImplementedError

    def accepts(self, annotation: Any) -> bool:
        """Whether ``Receiver[annotation]`` / ``Sender[annotation]`` fits this codec."""
        return annotation is Any or annotation == self.item_type


class TextCodec(Codec):
    """``messages()``: text frames as ``str``; a binary frame must be UTF-8."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(str)

    def decode(self, frame: Frame) -> str:
        if type(frame) is str:
            return frame
        try:
            return frame.decode("utf-8")  # type: ignore[union-attr]
        except UnicodeDecodeError as error:
            raise InvalidMessage(frame, f"binary frame is not UTF-8 text ({error})") from None

    def encode(self, item: Any) -> Frame:
        if type(item) is not str and not isinstance(item, str):
            raise TypeError(f"messages() sends str, got {type(item).__name__}")
        return item


class BytesCodec(Codec):
    """``bytes_messages()``: binary frames as ``bytes``; a text frame arrives as its UTF-8 bytes."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(bytes)

    def decode(self, frame: Frame) -> bytes:
        if type(frame) is bytes:
            return frame
        return frame.encode("utf-8") if isinstance(frame, str) else bytes(frame)

    def encode(self, item: Any) -> Frame:
        if type(item) is bytes:
            return item
        if isinstance(item, bytearray | memoryview):
            return bytes(item)
        raise TypeError(f"bytes_messages() sends bytes, got {type(item).__name__}")


class RawCodec(Codec):
    """``raw()``: ``str`` for text frames and ``bytes`` for binary ones, both ways."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(str | bytes)

    def decode(self, frame: Frame) -> Frame:
        return frame

    def encode(self, item: Any) -> Frame:
        if type(item) is str or type(item) is bytes:
            return item
        if isinstance(item, str):
            return str(item)
        if isinstance(item, bytearray | memoryview):
            return bytes(item)
        raise TypeError(f"raw() sends str or bytes, got {type(item).__name__}")

    def accepts(self, annotation: Any) -> bool:
        return annotation is Any or set(typing.get_args(annotation)) == {str, bytes}


_json_encoder: Final = msgspec.json.Encoder()


class JsonCodec(Codec):
    """``json(Model)``: JSON text frames decoded into ``Model`` and encoded from it.

    msgspec handles dataclasses, ``msgspec.Struct``, ``TypedDict`` and plain
    containers; a pydantic model is validated and dumped by pydantic itself.
    """

    __slots__ = ("_check_type", "_decode", "_encode")
    wire_kind: ClassVar[WireKind] = "json"

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self._check_type: type | None = None
        if _is_pydantic_model(model):
            self._decode = model.model_validate_json
            self._encode = _pydantic_dump
            self._check_type = model
        else:
            try:
                decoder = msgspec.json.Decoder(model)
            except TypeError as error:
                raise TypeError(f"json() cannot decode into {model!r}: {error}") from None
            if _has_custom_type(msgspec.inspect.type_info(model)):
                raise TypeError(
                    f"json() cannot decode into {model!r}: use a dataclass, a msgspec.Struct, "
                    "a TypedDict, a pydantic model, or dict / list / Any"
                )
            self._decode = decoder.decode
            self._encode = _encode_json
            if isinstance(model, type) and (
                dataclasses.is_dataclass(model) or issubclass(model, msgspec.Struct)
            ):
                self._check_type = model

    def decode(self, frame: Frame) -> Any:
        try:
            return self._decode(frame)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise InvalidMessage(frame, str(error)) from None
        except RecursionError:  # msgspec and pydantic both recurse on nesting
            raise InvalidMessage(frame, "JSON nested too deeply") from None
        except Exception as error:
            # pydantic's ValidationError, or a model's own validation (__post_init__)
            # failing on client data: still a bad message, never a crash.
            reason = str(error).replace("\n", " ") or type(error).__name__
            raise InvalidMessage(frame, reason) from None

    def encode(self, item: Any) -> Frame:
        check = self._check_type
        if check is not None and not isinstance(item, check):
            raise TypeError(
                f"json({check.__name__}) sends {check.__name__} items, got {type(item).__name__}"
            )
        return self._encode(item)


def _has_custom_type(info: msgspec.inspect.Type) -> bool:
    """Whether msgspec would take some class in ``info`` as an opaque custom type."""
    if isinstance(info, msgspec.inspect.CustomType):
        return True
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_has_custom_type(member) for member in info.types)
    for attribute in ("item_type", "key_type", "value_type"):
        nested = getattr(info, attribute, None)
        if isinstance(nested, msgspec.inspect.Type) and _has_custom_type(nested):
            return True
    return isinstance(info, msgspec.inspect.TupleType) and any(
        _has_custom_type(member) for member in info.item_types
    )


def _encode_json(item: Any) -> str:
    return _json_encoder.encode(item).decode()


def _pydantic_dump(item: Any) -> str:
    if hasattr(item, "model_dump_json"):
        return item.model_dump_json()  # type: ignore[no-any-return]
    return _encode_json(item)


def _is_pydantic_model(model: Any) -> bool:
    return isinstance(model, type) and hasattr(model, "model_validate_json")


_plain: Final = RawCodec()


def encode_for_kind(kind: WireKind, message: object) -> Frame:
    """Encode ``message`` once for every codec of ``kind`` (used by fan-out)."""
    if kind == "json":
        return _pydantic_dump(message)
    return _plain.encode(message)
