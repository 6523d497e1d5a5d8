from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from astrofm.data.dataset import write_dataset
from tests.helpers.synthetic import make_samples


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MMU folder ``gal`` of 200 image + spectrum objects with a Z target and a CLASS label."""
    root = tmp_path_factory.mktemp("synthetic")
    samples = make_samples(200, modalities=("image", "spectrum"))
    rng = np.random.default_rng(0)
    write_dataset(root / "gal", samples, catalog={"Z": rng.uniform(0, 1, 200),
                                                  "CLASS": np.array([b"A", b"B"])[rng.integers(0, 2, 200)]})
    return root


