"""Configuration of the simulated universe: one frozen dataclass and its presets.

Presets (``make_config(preset, **overrides)``):

- ``tiny``: 1,000 galaxies + 1,000 stars (2k objects) in 4 + 4 shards; seconds; tests and CI.
- ``small``: 20,000 galaxies + 20,000 stars; the demo and the science benchmarks.
- ``large``: 100,000 galaxies + 100,000 stars (200k objects); speed benchmarks.

Any field can be overridden (``image_size=160`` gives MMU's Legacy Survey cutouts).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from astrofm.errors import ConfigError

#: The survey-like datasets the simulator writes, by population.
GALAXY_SURVEYS = ("legacysurvey", "desi")
STAR_SURVEYS = ("asassn", "gaia", "lamost")


@dataclass(frozen=True)
class SimConfig:
    """Everything that decides the simulated data, except the seed.

    Sizes are numbers of objects; ``image_size`` in pixels (0.262″ each);
    ``astrometric_jitter`` in arcsec (per-coordinate Gaussian sigma of each
    survey's position about the true one); fractions in [0, 1].
    """

    n_galaxies: int = 1000
    n_stars: int = 1000
    image_size: int = 64
    galaxies_per_shard: int = 250
    stars_per_shard: int = 250
    spectroscopic_fraction: float = 0.6
    lamost_fraction: float = 1.0
    anomaly_fraction: float = 0.01
    astrometric_jitter: float = 0.1
    redshift_range: tuple[float, float] = (0.01, 0.6)
    magnitude_limit_z: float = 21.0
    lightcurve_bands: tuple[str, ...] = ("V", "g")
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)

    def __post_init__(self) -> None:
        self._check_types()
        checks = [
            (self.n_galaxies >= 0 and self.n_stars >= 0, "n_galaxies and n_stars must be >= 0"),
            (self.n_galaxies + self.n_stars > 0, "at least one object is needed"),
            (self.n_galaxies < 10_000_000, "n_galaxies must stay below 1e7 (Legacy Survey ids are 16 bytes)"),
            (self.image_size >= 16 and self.image_size % 2 == 0, "image_size must be an even number >= 16"),
            (self.galaxies_per_shard > 0 and self.stars_per_shard > 0, "objects per shard must be > 0"),
            (0.0 <= self.spectroscopic_fraction <= 1.0, "spectroscopic_fraction must lie in [0, 1]"),
            (0.0 <= self.lamost_fraction <= 1.0, "lamost_fraction must lie in [0, 1]"),
            (0.0 <= self.anomaly_fraction <= 0.5, "anomaly_fraction must lie in [0, 0.5]"),
            (self.astrometric_jitter >= 0.0, "astrometric_jitter must be >= 0 arcsec"),
            (0.0 < self.redshift_range[0] < self.redshift_range[1] <= 1.0, "redshift_range must be 0 < z0 < z1 <= 1"),
            (set(self.lightcurve_bands) <= {"V", "g"} and len(self.lightcurve_bands) > 0,
             "lightcurve_bands must be a non-empty subset of ('V', 'g')"),
            (abs(sum(self.split_fractions) - 1.0) < 1e-9
             and min(self.split_fractions) >= 0.0, "split_fractions must be three numbers >= 0 summing to 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"simulation config: {message}")

    def _check_types(self) -> None:
        """Raise ``ConfigError`` naming the first field of the wrong type; integer fields become plain ints."""
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            check, wanted = _TYPE_CHECKS[str(item.type)]
            if not check(value):
                raise ConfigError(f"simulation config: field {item.name!r} must be {wanted}, "
                                  f"got {value!r} ({type(value).__name__})")
            if item.type == "int":
                object.__setattr__(self, item.name, int(value))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SimConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ConfigError``."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"simulation config: unknown option(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def is_integer(value: Any) -> bool:
    """True for an int or numpy integer (not a bool, not a float such as 64.0)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(count: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, tuple) and len(value) == count and all(map(_is_number, value))


#: A field's annotation -> (its check, what it must be).
_TYPE_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int": (is_integer, "an integer"),
    "float": (_is_number, "a finite number"),
    "tuple[float, float]": (_numbers(2), "a tuple of 2 finite numbers"),
    "tuple[float, float, float]": (_numbers(3), "a tuple of 3 finite numbers"),
    "tuple[str, ...]": (lambda value: isinstance(value, tuple) and all(isinstance(v, str) for v in value),
                        "a tuple of strings"),
}


PRESETS: dict[str, SimConfig] = {
    "tiny": SimConfig(),
    "small": SimConfig(n_galaxies=20_000, n_stars=20_000, galaxies_per_shard=1000, stars_per_shard=1000),
    "large": SimConfig(n_galaxies=100_000, n_stars=100_000, galaxies_per_shard=1000, stars_per_shard=1000),
}


def make_config(preset: str = "tiny", **overrides: Any) -> SimConfig:
    """The config of a preset with some fields replaced."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown simulation preset {preset!r}; choose one of {sorted(PRESETS)}")
    values = PRESETS[preset].to_dict()
    values.update(overrides)
    return SimConfig.from_dict(values)
