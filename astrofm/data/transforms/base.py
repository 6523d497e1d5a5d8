"""Composable per-modality transforms with statistics fitted on the train split.

A transform maps one modality dict to another. Parameters are dataclass
fields; fitted statistics are listed in ``fitted_fields`` and saved with them,
so a pipeline round-trips through JSON (it travels inside model checkpoints).
Random augmentations run only when given a generator (``rng``); in evaluation
they are skipped, so eval is deterministic. Other transforms may also draw from
a generator when given one (e.g. ``LengthCap`` picks random points in training).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from astrofm.data.modalities import Sample
from astrofm.errors import ConfigError
from astrofm.utils.atomic import atomic_write_text

Item = dict[str, Any]
TRANSFORMS: dict[str, type[Transform]] = {}


class Transform:
    """Base class: a dataclass whose fields are its parameters."""

    #: Names of attributes set by ``fit`` (saved with the parameters).
    fitted_fields: ClassVar[tuple[str, ...]] = ()
    #: True for random augmentations (skipped when no generator is given).
    random: ClassVar[bool] = False
    #: True if the transform draws from the generator when given one (set for every ``random`` one):
    #: its output differs between epochs, so it is never cached.
    uses_rng: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.uses_rng = cls.uses_rng or cls.random
        TRANSFORMS[cls.__name__] = cls

    @property
    def needs_fit(self) -> bool:
        return any(getattr(self, f, None) is None for f in self.fitted_fields)

    def require_fitted(self) -> None:
        """Raise a ConfigError naming the transform if any of its ``fitted_fields`` is still unset."""
        if self.needs_fit:
            raise ConfigError(f"{type(self).__name__} is not fitted; call fit() on the train split first")

    def fit(self, items: Sequence[Item]) -> Transform:
        """Fit statistics on (train) items; stateless transforms return self."""
        return self

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        params = {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {"type": type(self).__name__, **params}

    @staticmethod
    def from_dict(config: Mapping[str, Any]) -> Transform:
        config = dict(config)
        name = config.pop("type", None)
        if name not in TRANSFORMS:
            raise ConfigError(f"unknown transform {name!r}; known: {sorted(TRANSFORMS)}")
        return TRANSFORMS[name](**config)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value


class Compose:
    """A sequence of transforms for one modality, fitted in order."""

    def __init__(self, transforms: Sequence[Transform] = ()) -> None:
        self.transforms = list(transforms)

    def fit(self, items: Iterable[Item]) -> Compose:
        current = list(items)
        for t in self.transforms:
            if t.needs_fit:
                t.fit(current)
            current = [t(it) for it in current]
        return self

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        for t in self.transforms:
            if t.random and rng is None:
                continue
            item = t(item, rng)
        return item

    def to_list(self) -> list[dict[str, Any]]:
        return [t.to_dict() for t in self.transforms]

    @classmethod
    def from_list(cls, configs: Sequence[Mapping[str, Any]]) -> Compose:
        return cls([Transform.from_dict(c) for c in configs])

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class SampleTransform:
    """Per-modality pipelines applied to whole samples; modalities without one pass through."""

    def __init__(self, pipelines: Mapping[str, Compose | Sequence[Transform]] | None = None) -> None:
        self.pipelines = {k: v if isinstance(v, Compose) else Compose(v) for k, v in (pipelines or {}).items()}

    def fit(self, samples: Iterable[Sample]) -> SampleTransform:
        """Fit every pipeline on the samples that have its modality (pass the train split only)."""
        samples = list(samples)
        for name, pipeline in self.pipelines.items():
            items = [s[name] for s in samples if name in s]
            if items:
                pipeline.fit(items)
        return self

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        out = dict(sample)
        for name, pipeline in self.pipelines.items():
            if name in out:
                out[name] = pipeline(out[name], rng)
        return out

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        return {name: p.to_list() for name, p in self.pipelines.items()}

    @classmethod
    def from_dict(cls, config: Mapping[str, Sequence[Mapping[str, Any]]]) -> SampleTransform:
        return cls({name: Compose.from_list(items) for name, items in config.items()})

    def save(self, path: str | Path) -> Path:
        """Write the pipelines and their fitted statistics as JSON (atomically)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> SampleTransform:
        return cls.from_dict(json.loads(Path(path).read_text()))
