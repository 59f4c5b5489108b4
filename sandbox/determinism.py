"""Stable randomness: the same key gives the same numbers in every process, on every machine.

Python's `hash()` is salted per process, so every seed in the sandbox comes from BLAKE2b over
the text of its key parts, e.g. `(seed, "J82001", "2026-03-30", "book")`.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

_SEPARATOR = "\x1f"  # ASCII unit separator: cannot appear in ODS codes, dates or ids
_UNIT = float(1 << 64)
_EIGHT_WORDS = struct.Struct(">8Q")


def stable_digest(*parts: object, size: int = 32) -> bytes:
    """BLAKE2b of the parts' text, joined unambiguously."""
    text = _SEPARATOR.join(str(part) for part in parts)
    return hashlib.blake2b(text.encode(), digest_size=size).digest()


def stable_int(*parts: object) -> int:
    """A 64-bit unsigned integer derived from the parts."""
    return int.from_bytes(stable_digest(*parts, size=8), "big")


def stable_random(*parts: object) -> random.Random:
    """A `random.Random` seeded from the parts (for generators that draw many numbers)."""
    return random.Random(stable_int(*parts))


class Dice:
    """A short stream of uniforms in [0, 1) keyed by the parts.

    One digest yields eight draws, and the stream re-hashes if more are needed. It is much
    cheaper than a `random.Random` per slot, which matters at ~200k slots per estate.
    """

    __slots__ = ("_block", "_draws", "_key")

    def __init__(self, *parts: object) -> None:
        self._key = parts
        self._block = 0
        self._draws = self._unpack(stable_digest(*parts, size=64))

    def uniform(self) -> float:
        if not self._draws:
            self._block += 1
            self._draws = self._unpack(stable_digest(*self._key, self._block, size=64))
        return self._draws.pop()

    @staticmethod
    def _unpack(digest: bytes) -> list[float]:
        # Reversed so that pop() hands out the draws in digest order.
        return [value / _UNIT for value in reversed(_EIGHT_WORDS.unpack(digest))]

    def chance(self, probability: float) -> bool:
        return self.uniform() < probability

    def between(self, low: float, high: float) -> float:
        return low + (high - low) * self.uniform()

    def choice(self, options: Sequence[T]) -> T:
        if not options:
            raise IndexError("cannot choose from an empty sequence")
        return options[min(int(self.uniform() * len(options)), len(options) - 1)]
