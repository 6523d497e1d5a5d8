"""What the demo's steps share: the options, the layout, and the universe, model, store and truth, loaded
on first use (a resumed run loads only what its remaining steps need)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.demo import data as D
from astrofm.demo.layout import DemoOptions, Layout
from astrofm.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class StepResult:
    """A finished step: its metrics (JSON), its figures (PNG file names and captions), and notes."""

    metrics: dict[str, Any] = field(default_factory=dict)
    figures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Context:
    def __init__(self, options: DemoOptions, layout: Layout) -> None:
        self.options = options
        self.layout = layout
        self.seed = options.seed
        self.progress = options.progress
        #: Metrics of the finished steps, by step name (filled by the pipeline).
        self.done: dict[str, dict[str, Any]] = {}

    @property
    def universe(self) -> Path:
        return self.layout.universe

    # -- the model ------------------------------------------------------------------------------------
    @cached_property
    def model_folder(self) -> Path:
        """The model's local folder (step 2 records it; resolved from --model otherwise)."""
        if self.options.train:
            return self.layout.model
        recorded = self.done.get("model", {}).get("folder")
        return Path(recorded) if recorded else resolve_model(self.options.model)

    @cached_property
    def model(self) -> Any:
        from astrofm.hub.pretrained import load_pretrained
        from astrofm.model import AstroFM

        model = load_pretrained(self.model_folder)
        if not isinstance(model, AstroFM):
            raise ConfigError(f"{self.model_folder} holds a {type(model).__name__}; the demo needs an "
                              "AstroFM embedding model")
        return model.eval()

    @cached_property
    def modalities(self) -> tuple[str, ...]:
        from astrofm.hub.pretrained import read_config

        return tuple(read_config(self.model_folder)["model"]["modalities"])

    # -- data -----------------------------------------------------------------------------------------
    @cached_property
    def store(self) -> Any:
        from astrofm.downstream.store import EmbeddingStore

        return EmbeddingStore.open(self.layout.store)

    def population(self, name: str) -> D.Population:
        cache = self.__dict__.setdefault("_populations", {})
        if name not in cache:
            cache[name] = D.load_population(self.universe, name, self.modalities)
        return cache[name]

    @property
    def populations(self) -> list[str]:
        return list(D.source_specs(self.modalities))

    def vectors(self, population: str, modality: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows of the population, vectors) of the stored embeddings of one modality of a population."""
        if modality not in self.store.modalities:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        rows = self.population(population).rows(self.store.object_ids(modality))
        keep = rows >= 0
        return rows[keep], np.asarray(self.store.vectors(modality))[keep]

    def aligned(self, population: str, modality: str) -> np.ndarray:
        """(N, D) embeddings of one modality for every object of a population, NaN rows where absent."""
        pop = self.population(population)
        rows, vectors = self.vectors(population, modality)
        out = np.full((len(pop.ids), vectors.shape[1] if vectors.size else 1), np.nan, np.float32)
        out[rows] = vectors
        return out


def resolve_model(name: str) -> Path:
    """The local folder of a model name, folder, URL or hub id; a clear error if there is none."""
    from astrofm.hub.pretrained import read_config
    from astrofm.hub.resolve import resolve_pretrained

    folder = resolve_pretrained(name)
    config = read_config(folder)
    if config["model"].get("model_type") == "ar":
        raise ConfigError(f"--model {name} is an autoregressive model; the demo needs an AstroFM embedding model")
    return folder
