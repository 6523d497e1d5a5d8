"""Tabular (catalog metadata) encoders: a feature tokenizer transformer, or an MLP.

Input: the tabular ``ModalityBatch`` after ``Standardize``: ``values`` (P, F)
standardized, with missing values at 0, and the batch mask / ``observed``
field (P, F) True = observed. Missing features are masked inside attention
(feature tokenizer) or zeroed with an indicator (MLP).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from astrofm.data.batch import ModalityBatch
from astrofm.errors import ConfigError
from astrofm.modalities.base import (
    EncoderConfig,
    EncoderOutput,
    ModalityEncoder,
    TransformerConfig,
    TransformerEncoder,
    register_encoder,
)
from astrofm.nn import build_mlp


def tabular_values(batch: ModalityBatch, n_features: int) -> tuple[Tensor, Tensor]:
    """values (P, F) with missing set to 0, and the observed mask (P, F)."""
    values = batch.data["values"]
    if values.shape[-1] != n_features:
        raise ConfigError(f"tabular encoder expects {n_features} features, got {values.shape[-1]}")
    observed = batch.mask if batch.mask is not None else torch.isfinite(values)
    observed = observed & torch.isfinite(values)
    return torch.where(observed, values, 0.0), observed


@dataclass
class FeatureTokenizerConfig(TransformerConfig):
    n_features: int = 16


@register_encoder("tabular")
class FeatureTokenizerEncoder(TransformerEncoder):
    """One token per feature, value x w_f + b_f (FT-Transformer); missing features are masked."""

    config_class = FeatureTokenizerConfig
    modality = "tabular"

    def __init__(self, config: FeatureTokenizerConfig) -> None:
        super().__init__(config)
        self.weight = nn.Parameter(torch.randn(config.n_features, config.dim) * 0.02)
        self.bias = nn.Parameter(torch.randn(config.n_features, config.dim) * 0.02)

    def tokenize(self, batch: ModalityBatch) -> tuple[Tensor, Tensor]:
        values, observed = tabular_values(batch, self.config.n_features)  # type: ignore[attr-defined]
        return values[..., None].to(self.weight.dtype) * self.weight + self.bias, observed


@dataclass
class TabularMLPConfig(EncoderConfig):
    n_features: int = 16
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    dropout: float = 0.0


@register_encoder("tabular_mlp")
class TabularMLPEncoder(ModalityEncoder):
    """MLP on (values, observed indicators); one token = the pooled vector."""

    config_class = TabularMLPConfig
    modality = "tabular"

    def __init__(self, config: TabularMLPConfig) -> None:
        super().__init__(config)
        self.net = build_mlp([2 * config.n_features, *config.hidden], dropout=config.dropout)

    @property
    def out_dim(self) -> int:
        return self.config.hidden[-1]  # type: ignore[attr-defined,no-any-return]

    def forward(self, batch: ModalityBatch) -> EncoderOutput:
        values, observed = tabular_values(batch, self.config.n_features)  # type: ignore[attr-defined]
        dtype = self.net[0].weight.dtype
        pooled = self.net(torch.cat([values, observed.to(values.dtype)], dim=-1).to(dtype))
        return EncoderOutput(pooled[:, None], None, pooled)
