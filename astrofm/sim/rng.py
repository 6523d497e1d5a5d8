"""Independent random streams, derived from the seed and names, never from global state.

Every piece of work (a population's footprint, one healpix shard, one render
batch) draws from its own ``numpy.random.Generator`` keyed by
``(seed, *keys)``, so the data do not depend on which process does the work or
in which order.
"""

from __future__ import annotations

import zlib

import numpy as np


def _code(key: int | str) -> int:
    if isinstance(key, str):
        return zlib.crc32(key.encode("utf-8"))
    if key < 0:
        raise ValueError(f"stream keys must be >= 0, got {key}")
    return int(key)


def stream(seed: int, *keys: int | str) -> np.random.Generator:
    """A generator for ``(seed, *keys)``; string keys are hashed stably (CRC-32)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(_code(k) for k in keys)))
