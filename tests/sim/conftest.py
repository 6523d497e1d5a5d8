"""The ``tiny`` simulated universe, made once per test session (shared by the xdist workers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

from astrofm.sim import simulate
from astrofm.sim.pipeline import SimulatedUniverse


def _shared(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A path shared by all xdist workers of this session."""
    return tmp_path_factory.getbasetemp().parent / name


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> SimulatedUniverse:
    """The ``tiny`` preset, seed 0 (1,000 galaxies + 1,000 stars, 64×64 cutouts)."""
    root = _shared(tmp_path_factory, "sim-tiny")
    with FileLock(f"{root}.lock"):
        return simulate(root, preset="tiny", seed=0, workers=2, progress=False)


@pytest.fixture(scope="session")
def star_features(tiny: SimulatedUniverse, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Lomb–Scargle features and metadata of the tiny universe's normal stars (computed once, cached)."""
    from astrofm.sim.validation import stellar_features

    cache = _shared(tmp_path_factory, "sim-tiny-star-features.npz")
    with FileLock(f"{cache}.lock"):
        if not cache.exists():
            np.savez(cache, **stellar_features(tiny.root))
    with np.load(cache) as data:
        return {k: data[k] for k in data.files}
