"""Object ids: 32 bytes as 64 lowercase hex characters, MAC'd by their namespace.

As in workerd: ``nsKey = SHA256(uniqueKey)``; the first 16 bytes are the base (an HMAC of
the name, or random), the last 16 are ``HMAC-SHA256(nsKey, base)[:16]``, so an id from one
namespace is refused by another.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

from service.api.text import check_text

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class DurableObjectId:
    """An object's identity; ``name`` is set when it was made from a name."""

    __slots__ = ("_hex", "name")

    def __init__(self, hex_id: str, name: str | None = None) -> None:
        self._hex = hex_id
        self.name = name

    def to_string(self) -> str:
        return self._hex

    def equals(self, other: DurableObjectId) -> bool:
        return self._hex == other._hex

    def __str__(self) -> str:
        return self._hex

    def __repr__(self) -> str:
        suffix = f", name={self.name!r}" if self.name is not None else ""
        return f"DurableObjectId({self._hex!r}{suffix})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DurableObjectId) and other._hex == self._hex

    def __hash__(self) -> int:
        return hash(self._hex)


class IdFactory:
    """Makes and checks the ids of one namespace."""

    def __init__(self, unique_key: str) -> None:
        self._key = hashlib.sha256(unique_key.encode("utf-8")).digest()

    def _mac(self, base: bytes) -> bytes:
        return hmac.new(self._key, base, hashlib.sha256).digest()[:16]

    def from_name(self, name: str) -> DurableObjectId:
        if not isinstance(name, str):
            raise TypeError("id_from_name() expects a string name.")
        # The name is kept in the catalog (objects.name), which cannot hold every string.
        encoded = check_text(name, "A Durable Object name")
        base = hmac.new(self._key, encoded, hashlib.sha256).digest()[:16]
        return DurableObjectId((base + self._mac(base)).hex(), name)

    def unique(self) -> DurableObjectId:
        base = os.urandom(16)
        return DurableObjectId((base + self._mac(base)).hex())

    def from_string(self, hex_id: str) -> DurableObjectId:
        if not isinstance(hex_id, str) or not _HEX64.fullmatch(hex_id):
            raise TypeError("Invalid Durable Object ID: must be 64 hex digits")
        hex_id = hex_id.lower()
        raw = bytes.fromhex(hex_id)
        if not hmac.compare_digest(self._mac(raw[:16]), raw[16:]):
            raise TypeError("Durable Object ID is not valid for this namespace.")
        return DurableObjectId(hex_id)
