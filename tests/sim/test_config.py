"""Simulator configs: a wrong type or value is a ConfigError naming the field, raised before anything is written."""

from __future__ import annotations

import numpy as np
import pytest

from astrofm.errors import ConfigError
from astrofm.sim import simulate
from astrofm.sim.config import make_config


@pytest.mark.parametrize(("field", "value"), [
    ("n_galaxies", 10.5), ("n_stars", "100"), ("n_galaxies", None), ("image_size", 64.0), ("n_stars", True),
    ("galaxies_per_shard", 2.5), ("stars_per_shard", 25.0), ("redshift_range", 0.5), ("split_fractions", (0.8, 0.2)),
    ("astrometric_jitter", float("inf")), ("magnitude_limit_z", float("nan")), ("lightcurve_bands", "V"),
    ("spectroscopic_fraction", "0.5"), ("redshift_range", (0.1, "0.5")),
])
def test_a_field_of_the_wrong_type_is_named(field, value):
    with pytest.raises(ConfigError, match=f"field '{field}' must be"):
        make_config("tiny", **{field: value})


def test_numpy_integers_are_accepted_as_plain_ints():
    config = make_config("tiny", n_galaxies=np.int64(30), image_size=np.int32(32))
    assert type(config.n_galaxies) is int and type(config.image_size) is int
    assert config == make_config("tiny", n_galaxies=30, image_size=32)


@pytest.mark.parametrize(("seed", "overrides", "field"), [
    (-1, {}, "seed"), (2.5, {}, "seed"), ("3", {}, "seed"), (0, {"image_size": 64.0}, "image_size"),
    (0, {"n_galaxies": 20.0}, "n_galaxies"),
])
def test_bad_seed_or_config_writes_nothing(tmp_path, seed, overrides, field):
    root = tmp_path / "sim"
    with pytest.raises(ConfigError, match=f"field '{field}' must be"):
        simulate(root, preset="tiny", seed=seed, progress=False, n_stars=20, **overrides)
    assert not root.exists()
