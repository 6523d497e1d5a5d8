"""``AstroFM``: the model object users load, embed with and save.

It holds one encoder and one projection head per modality (all heads map to
the same ``embed_dim``, L2-normalized), and the per-modality transforms with
their fitted statistics, so a model preprocesses raw samples the way it was
trained. Its config is plain JSON (``AstroFMConfig.to_dict``) and its
``state_dict`` holds only tensors (safetensors-compatible), so
``AstroFM.from_config(config)`` + ``load_state_dict`` recreate it exactly.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from astrofm._version import __version__
from astrofm.data.batch import Batch, ModalityBatch, collate
from astrofm.data.modalities import Sample
from astrofm.data.transforms import SampleTransform
from astrofm.errors import ConfigError
from astrofm.modalities import EncoderOutput, ModalityEncoder, create_encoder
from astrofm.nn import ProjectionHead, eval_mode


@dataclass
class ModalityConfig:
    """One modality of a model: its registered encoder, the encoder's options, its transforms."""

    encoder: str
    config: dict[str, Any] = field(default_factory=dict)
    #: ``Compose.to_list()`` of the modality's transforms, fitted statistics included.
    transforms: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class AstroFMConfig:
    """Everything needed to rebuild an ``AstroFM`` (JSON-serializable)."""

    modalities: dict[str, ModalityConfig]
    #: Width of the shared embedding space.
    embed_dim: int = 256
    #: Hidden width of the projection heads (0: linear heads).
    head_hidden: int = 0
    version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return {
            "modalities": {name: {"encoder": m.encoder, "config": dict(m.config), "transforms": list(m.transforms)}
                           for name, m in self.modalities.items()},
            "embed_dim": self.embed_dim,
            "head_hidden": self.head_hidden,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AstroFMConfig:
        values = dict(values)
        raw = values.pop("modalities", None)
        if not raw:
            raise ConfigError("a model config needs at least one modality under 'modalities'")
        unknown = sorted(set(values) - {"embed_dim", "head_hidden", "version"})
        if unknown:
            raise ConfigError(f"unknown model option(s) {unknown}")
        modalities = {}
        for name, spec in raw.items():
            spec = dict(spec)
            if "encoder" not in spec:
                raise ConfigError(f"modality '{name}' needs an 'encoder' name")
            modalities[name] = ModalityConfig(spec.pop("encoder"), dict(spec.pop("config", {}) or {}),
                                              list(spec.pop("transforms", []) or []))
            if spec:
                raise ConfigError(f"modality '{name}': unknown option(s) {sorted(spec)}")
        return cls(modalities, **values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> AstroFMConfig:
        return cls.from_dict(json.loads(text))


@dataclass
class Embedded:
    """One modality's embeddings over the P objects the batch has it for.

    An object whose encoder output has no real token (e.g. a spectrum with every pixel bad) has a row in
    ``z`` that means nothing; it is not :attr:`presence`, so it is neither embedded nor paired in a loss.
    """

    z: Tensor  # (P, D) unit vectors, one per row of ``rows``
    rows: Tensor  # (B,) bool: the objects the batch has the modality for
    output: EncoderOutput

    @property
    def presence(self) -> Tensor:
        """(B,) bool: the objects with an embedding (the modality, and at least one real token of it)."""
        if self.output.mask is None:
            return self.rows
        return self.rows.masked_scatter(self.rows, self.output.mask.any(dim=1))

    def scatter(self, fill: float = math.nan) -> Tensor:
        """(B, D): embeddings of the present objects, ``fill`` for the others."""
        full = self.z.new_full((len(self.rows), self.z.shape[-1]), fill)
        return full.masked_scatter(self.rows[:, None], self.z).masked_fill(~self.presence[:, None], fill)


P = TypeVar("P", bound="Preprocessing")


class Preprocessing:
    """The per-modality transforms of a model's config (``config.modalities[name].transforms``).

    Shared by every model object (``AstroFM``, ``astrofm.ar.ARModel``): they preprocess raw samples
    the way they were trained, with the fitted statistics stored in their config.
    """

    config: Any
    _transform: SampleTransform | None = None

    @property
    def transform(self) -> SampleTransform:
        """The per-modality transforms of the config (fitted statistics included)."""
        if self._transform is None:
            self._transform = SampleTransform.from_dict(
                {name: m.transforms for name, m in self.config.modalities.items() if m.transforms})
        return self._transform

    @property
    def needs_fit(self) -> bool:
        """True if a transform still lacks fitted statistics."""
        return any(t.needs_fit for p in self.transform.pipelines.values() for t in p.transforms)

    def fit_transforms(self: P, samples: Sequence[Sample]) -> P:
        """Fit the transforms on (train) samples and store the statistics in the config."""
        transform = self.transform.fit(samples)
        for name, pipeline in transform.pipelines.items():
            self.config.modalities[name].transforms = pipeline.to_list()
        self._transform = transform
        return self

    # -- weights in and out (astrofm.hub.pretrained: safetensors + JSON, never pickle) -------------------
    @classmethod
    def from_pretrained(cls, source: str | os.PathLike[str], *, revision: str | None = None,
                        device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> Any:
        """A ready model (eval mode, on ``device``/``dtype``) from a folder, a registry name such as
        ``"astrofm-sim-small"``, an https URL (folder manifest or archive) or a Hugging Face repo id."""
        from astrofm.hub.pretrained import load_pretrained

        model = load_pretrained(source, revision=revision, device=device, dtype=dtype)
        if not isinstance(model, cls):
            raise ConfigError(f"{source} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def save_pretrained(self, folder: str | os.PathLike[str], *, card: Any = None) -> Path:
        """Write ``config.json``, ``model.safetensors``, a model card and a checksum manifest to ``folder``."""
        from astrofm.hub.pretrained import save_pretrained

        return save_pretrained(self, folder, card=card)  # type: ignore[arg-type]

    def push_to_hub(self, repo_id: str, *, card: Any = None, private: bool = False, token: str | None = None,
                    commit_message: str = "Upload astrofm model") -> str:
        """Save the model and upload it to a Hugging Face hub repo (created if needed); returns the commit URL."""
        from astrofm.hub.pretrained import push_to_hub

        return push_to_hub(self, repo_id, card=card, private=private, token=token,  # type: ignore[arg-type]
                           commit_message=commit_message)

    def preprocess(self, samples: Sequence[Sample], rng: np.random.Generator | None = None) -> Batch:
        """Raw samples -> transformed, collated ``Batch`` (``rng`` enables random augmentations)."""
        if self.needs_fit:
            raise ConfigError("the model's transforms are not fitted; call fit_transforms(train_samples)")
        return collate([self.transform(s, rng) for s in samples])


class AstroFM(Preprocessing, nn.Module):
    """Per-modality encoders and projection heads into one shared, L2-normalized space."""

    def __init__(self, config: AstroFMConfig) -> None:
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        for name, spec in config.modalities.items():
            encoder = create_encoder(spec.encoder, **spec.config)
            self.encoders[name] = encoder
            self.heads[name] = ProjectionHead(encoder.out_dim, config.embed_dim, config.head_hidden)
        self._transform: SampleTransform | None = None

    @classmethod
    def from_config(cls, config: AstroFMConfig | Mapping[str, Any]) -> AstroFM:
        """A freshly initialized model of the given architecture."""
        return cls(config if isinstance(config, AstroFMConfig) else AstroFMConfig.from_dict(config))

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.config.modalities)

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def encoder(self, modality: str) -> ModalityEncoder:
        return self.encoders[modality]  # type: ignore[return-value]

    # -- encoding -------------------------------------------------------------------------------------
    def forward(self, batch: Batch, modalities: Sequence[str] | None = None) -> dict[str, Embedded]:
        """Unit embeddings of every (requested) model modality present in the batch."""
        return {name: self.embed_modality(name, batch.modalities[name])
                for name in modalities or self.modalities if name in batch.modalities}

    def embed_modality(self, name: str, data: ModalityBatch) -> Embedded:
        """Unit embeddings of one modality's batch (e.g. a view of it that an objective made)."""
        encoded = self.encoders[name](data)
        return Embedded(self.heads[name](encoded.pooled), data.presence, encoded)

    @torch.no_grad()
    def embed(self, batch: Batch | Sequence[Sample], modalities: Sequence[str] | None = None
              ) -> dict[str, Tensor]:
        """(B, D) unit embeddings per modality, NaN rows for objects without it (eval mode, no grad).

        Accepts a ``Batch`` (already transformed) or raw samples (preprocessed here).
        """
        if not isinstance(batch, Batch):
            batch = self.preprocess(batch)
        device = next(self.parameters()).device
        batch = batch.to(device)  # float32 inputs: encoders cast to their weights after fp32 position codes
        with eval_mode(self):
            embedded = self.forward(batch, modalities)
        names = modalities or self.modalities
        return {name: embedded[name].scatter() if name in embedded
                else torch.full((len(batch), self.embed_dim), math.nan, device=device) for name in names}

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def model_from_config(config: Mapping[str, Any]) -> nn.Module:
    """A freshly initialized model of a config dict: an ``AstroFM``, or an ``ARModel`` (``model_type: "ar"``)."""
    if config.get("model_type") == "ar":
        from astrofm.ar import ARModel

        return ARModel.from_config(config)
    return AstroFM.from_config(config)
