"""Helpers shared by the tests (and the benchmarks): written once, imported from here."""

from __future__ import annotations

import zlib


def stable_seed(*parts: object) -> int:
    """A 32-bit seed from `parts` (strings, numbers, tuples of them) that is the same in
    every process: crc32 of their repr. Unlike hash(), it does not change with
    PYTHONHASHSEED, so a failure reported with its seed can be replayed."""
    return zlib.crc32(repr(parts).encode())
