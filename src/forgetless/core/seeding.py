"""Seeds derived from the run's seed: every random choice (data order, buffers, samples, probe
directions) draws from its own stable sub-seed, so a choice does not shift when another one is
added, and every process derives the same value without communicating."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *parts: object) -> int:
    """A stable sub-seed for (seed, parts): the same on every process and every run."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
