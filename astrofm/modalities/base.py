"""Encoder base classes, their configs and the one registry (``create_encoder``), timm-style.

An encoder reads one ``ModalityBatch`` (the P objects that have the modality)
and returns an :class:`EncoderOutput`: tokens (P, L, D), their mask (True =
real) and a mask-aware pooled vector (P, D). Encoders are registered by name
with :func:`register_encoder`; a new modality is a new module that registers
its encoder, and nothing else changes.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from astrofm.data.batch import ModalityBatch
from astrofm.errors import ConfigError
from astrofm.nn import Transformer, create_pool

E = TypeVar("E", bound="type[ModalityEncoder]")

#: Encoder classes by registered name.
ENCODERS: dict[str, type[ModalityEncoder]] = {}


@dataclass
class EncoderConfig:
    """Options shared by every encoder."""

    #: Pooling of tokens into one vector: "attention" (learned query) or "mean" (masked mean).
    pool: str = "attention"
    #: Attention heads of the pooling layer.
    pool_heads: int = 4

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EncoderConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown option(s) {unknown}; known: {sorted(names)}")
        return cls(**values)


@dataclass
class TransformerConfig(EncoderConfig):
    """A transformer trunk over tokens."""

    #: Token width.
    dim: int = 128
    #: Transformer blocks.
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    #: "sdpa" (fused F.scaled_dot_product_attention) or "manual" (reference).
    attn_impl: str = "sdpa"
    #: Per-object scalar/vector fields of the modality turned into one extra token, {field: width}
    #: (e.g. {"log_norm": 1} of IvarNormalize, {"log_scale": 2} of PerBandNormalize).
    context_fields: dict[str, int] = field(default_factory=dict)


@dataclass
class EncoderOutput:
    """What an encoder returns for the P objects that have its modality."""

    tokens: Tensor  # (P, L, D)
    mask: Tensor | None  # (P, L) bool, True = real token; None = all real
    pooled: Tensor  # (P, D)


class ModalityEncoder(nn.Module, ABC):
    """Base class of every encoder: ``forward(ModalityBatch) -> EncoderOutput``."""

    config_class: ClassVar[type[EncoderConfig]] = EncoderConfig
    #: The data modality it reads (the ``Batch`` key it is usually configured under).
    modality: ClassVar[str]

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config

    @property
    @abstractmethod
    def out_dim(self) -> int:
        """Width of tokens and pooled output."""

    @abstractmethod
    def forward(self, batch: ModalityBatch) -> EncoderOutput:
        """Encode the present objects of one modality."""


class TransformerEncoder(ModalityEncoder):
    """Tokenizer (subclass) -> optional context token -> masked transformer -> masked pooling."""

    config_class = TransformerConfig

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        self.trunk = Transformer(config.dim, config.depth, config.heads, mlp_ratio=config.mlp_ratio,
                                 dropout=config.dropout, impl=config.attn_impl)
        self.pool = create_pool(config.pool, config.dim, config.pool_heads, config.attn_impl)
        width = sum(config.context_fields.values())
        self.context = nn.Linear(width, config.dim) if width else None

    @property
    def out_dim(self) -> int:
        return self.config.dim  # type: ignore[attr-defined,no-any-return]

    @abstractmethod
    def tokenize(self, batch: ModalityBatch) -> tuple[Tensor, Tensor | None]:
        """Input tokens (P, L, dim) and their mask (P, L) True = real, before the trunk."""

    def forward(self, batch: ModalityBatch) -> EncoderOutput:
        tokens, mask = self.tokenize(batch)
        if self.context is not None:
            tokens, mask = self._prepend_context(batch, tokens, mask)
        tokens = self.trunk(tokens, mask)
        return EncoderOutput(tokens, mask, self.pool(tokens, mask))

    def _prepend_context(self, batch: ModalityBatch, tokens: Tensor, mask: Tensor | None
                         ) -> tuple[Tensor, Tensor]:
        parts = []
        for name, width in self.config.context_fields.items():  # type: ignore[attr-defined]
            if name not in batch.data:
                raise ConfigError(f"{type(self).__name__}: context field '{name}' not in the batch "
                                  f"(fields: {sorted(batch.data)}); add the transform that makes it")
            parts.append(batch.data[name].reshape(len(tokens), width).to(tokens.dtype))
        token = self.context(torch.cat(parts, dim=-1))[:, None]  # type: ignore[misc]
        real = torch.ones(len(tokens), 1, dtype=torch.bool, device=tokens.device)
        mask = real.expand(-1, tokens.shape[1]) if mask is None else mask
        return torch.cat([token, tokens], dim=1), torch.cat([real, mask], dim=1)


def register_encoder(name: str) -> Callable[[E], E]:
    """Class decorator: make an encoder available to :func:`create_encoder` as ``name``."""

    def decorate(cls: E) -> E:
        if name in ENCODERS and ENCODERS[name] is not cls:
            raise ConfigError(f"an encoder named {name!r} is already registered ({ENCODERS[name].__name__})")
        ENCODERS[name] = cls
        cls.registered_name = name  # type: ignore[attr-defined]
        return cls

    return decorate


def list_encoders(modality: str | None = None) -> list[str]:
    """Names of the registered encoders (those reading ``modality`` if given)."""
    return sorted(name for name, cls in ENCODERS.items() if modality is None or cls.modality == modality)


def create_encoder(name: str, **config: Any) -> ModalityEncoder:
    """An encoder by registered name, its config from keyword options (``create_encoder("spectrum", dim=64)``)."""
    if name not in ENCODERS:
        raise ConfigError(f"unknown encoder {name!r}; registered: {list_encoders()}")
    cls = ENCODERS[name]
    return cls(cls.config_class.from_dict(config))
