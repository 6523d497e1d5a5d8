"""Fixtures of the simulator tests (the ``tiny`` universe itself comes from tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from filelock import FileLock

from astrofm.sim.pipeline import SimulatedUniverse
from tests.helpers.shared import shared_path


@pytest.fixture(scope="session")
def star_features(tiny: SimulatedUniverse, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Lomb–Scargle features and metadata of the tiny universe's normal stars (computed once, cached)."""
    from astrofm.sim.validation import stellar_features

    cache = shared_path(tmp_path_factory, "sim-tiny-star-features.npz")
    with FileLock(f"{cache}.lock"):
        if not cache.exists():
            np.savez(cache, **stellar_features(tiny.root))
    with np.load(cache) as data:
        return {k: data[k] for k in data.files}
