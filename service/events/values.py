"""Codec for the values users store: what JSON holds, plus bytes, copied at call time.

Values are kept in their *encoded* form (a JSON-ready tree) in object state, in events and
in snapshots. Bytes, strings holding NUL (which jsonb cannot store) and dicts that would be
mistaken for one of these wrappers are tagged with a single ``$``-key object. Decoding builds
fresh containers, which gives structured-clone semantics: callers never share our copy.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

#: Encoded values: plain JSON trees, produced and consumed only by this module.
Encoded = Any

_BYTES = "$bytes"
_STR = "$str"
_OBJ = "$obj"
_TAGS = frozenset({_BYTES, _STR, _OBJ})


def encode(value: Any) -> Encoded:
    """Return a JSON-ready copy of ``value``; raise TypeError for what cannot be stored."""
    if value is None or value is True or value is False or isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise TypeError(f"Cannot store the float {value!r}: only finite numbers are storable.")
        return value
    if isinstance(value, str):
        return encode_str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return {_BYTES: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return _encode_dict(value)
    raise TypeError(
        f"Cannot store a value of type {type(value).__name__}: "
        "values must be what JSON can hold (dict, list, str, int, float, bool, None) or bytes."
    )


def encode_str(text: str) -> Encoded:
    """Encode a string; NUL characters (refused by jsonb) and lone surrogates are handled."""
    if "\x00" in text:
        return {_STR: base64.b64encode(_utf8(text)).decode("ascii")}
    _utf8(text)
    return text


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise TypeError("Cannot store a string that is not valid Unicode text.") from error


def _encode_dict(value: dict[Any, Any]) -> Encoded:
    for key in value:
        if not isinstance(key, str):
            raise TypeError(
                f"Cannot store a dict with a key of type {type(key).__name__}: keys must be str."
            )
    needs_wrapper = (len(value) == 1 and next(iter(value)) in _TAGS) or any(
        "\x00" in key for key in value
    )
    if needs_wrapper:
        return {_OBJ: [[encode_str(key), encode(item)] for key, item in value.items()]}
    out = {}
    for key, item in value.items():
        _utf8(key)
        out[key] = encode(item)
    return out


def decode(encoded: Encoded) -> Any:
    """Return a fresh Python value from its encoded form."""
    if isinstance(encoded, list):
        return [decode(item) for item in encoded]
    if isinstance(encoded, dict):
        if len(encoded) == 1:
            ((tag, payload),) = encoded.items()
            if tag == _BYTES:
                return base64.b64decode(payload)
            if tag == _STR:
                return base64.b64decode(payload).decode("utf-8")
            if tag == _OBJ:
                return {decode(key): decode(item) for key, item in payload}
        return {key: decode(item) for key, item in encoded.items()}
    return encoded


def dumps(encoded: Encoded) -> str:
    """Serialize an encoded value compactly; its UTF-8 length is the size users are charged."""
    return json.dumps(encoded, ensure_ascii=False, separators=(",", ":"))


def size_of(encoded: Encoded) -> int:
    """Size in bytes of the serialized form, the measure used for every value limit."""
    return len(dumps(encoded).encode("utf-8"))
