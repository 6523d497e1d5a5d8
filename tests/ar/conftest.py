from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MMU folder ``gal`` of 144 objects with 8x8 images and 64-pixel spectra."""
    from astrofm.data.dataset import write_dataset
    from tests.helpers.synthetic import make_samples

    root = tmp_path_factory.mktemp("ar-synthetic")
    write_dataset(root / "gal", make_samples(144, modalities=("image", "spectrum")))
    return root
