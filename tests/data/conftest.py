from __future__ import annotations

import numpy as np
import pytest

from astrofm.data.dataset import MMUDataset, write_dataset
from tests.helpers.synthetic import make_samples


@pytest.fixture(scope="session")
def galaxy_dir(tmp_path_factory: pytest.TempPathFactory):
    """A 300-object image + spectrum dataset with a Z target and two tabular columns."""
    root = tmp_path_factory.mktemp("galaxies")
    samples = make_samples(300, seed=1)
    rng = np.random.default_rng(2)
    catalog = {"Z": rng.uniform(0, 1, 300).astype(np.float32), "MAG_G": rng.normal(20, 1, 300).astype(np.float32),
               "MAG_R": rng.normal(19, 1, 300).astype(np.float32)}
    catalog["MAG_R"][::7] = np.nan
    write_dataset(root, samples, catalog=catalog)
    return root


@pytest.fixture(scope="session")
def galaxy_samples():
    return make_samples(300, seed=1)


@pytest.fixture
def galaxies(galaxy_dir):
    return MMUDataset(galaxy_dir, target_columns=["Z"], tabular_columns=["MAG_G", "MAG_R"])
