"""``ARModel``: a decoder-only transformer over the token sequences of one or more modalities.

Each object's sequence is the tokens of its modalities, one after the other in ``order``
(e.g. image patches then spectrum windows). Token ``i`` is predicted from the hidden state
of token ``i - 1`` by the head of token ``i``'s modality (AstroPT's next-token regression).

Padding and absent modalities: every row of the batch is *packed* - its real tokens first,
in order, its padding after them - so that with the causal mask no real token can attend to
a padded one. Padding is thereby excluded inside attention (not only from the loss), and
a row's predictions do not depend on how much padding the batch has. The causal mask is
SDPA's own (``is_causal``), so the fused/flash kernels apply.

Embeddings: per modality, the mean (or the last) of its real tokens' hidden states after a
chosen block (by default the middle one, as AstroPT does), L2-normalized by default, in the same
``embed(batch) -> {modality: (B, D)}`` form as ``AstroFM.embed``; only the blocks up to that one
are run.

The config is plain JSON (``ARConfig.to_dict``, with ``model_type: "ar"``) and the state dict
holds only tensors, so ``ARModel.from_config(config)`` + ``load_state_dict`` recreate a model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from astrofm._version import __version__
from astrofm.ar.tokenizers import ARTokenizer, Tokens, create_tokenizer
from astrofm.data.batch import Batch
from astrofm.data.modalities import Sample
from astrofm.data.transforms import SampleTransform
from astrofm.errors import ConfigError
from astrofm.model import Preprocessing
from astrofm.nn import Transformer, eval_mode, masked_mean

MODEL_TYPE = "ar"
EMBED_REDUCTIONS = ("mean", "last")
GELUS = ("tanh", "none")


@dataclass
class ARModalityConfig:
    """One modality of an AR model: its registered tokenizer, the tokenizer's options, its transforms."""

    tokenizer: str
    config: dict[str, Any] = field(default_factory=dict)
    #: ``Compose.to_list()`` of the modality's transforms, fitted statistics included.
    transforms: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ARConfig:
    """Everything needed to rebuild an ``ARModel`` (JSON-serializable)."""

    modalities: dict[str, ARModalityConfig]
    #: Order of the modalities in each sequence (None: the order of ``modalities``).
    order: list[str] | None = None
    #: Token width.
    dim: int = 128
    #: Transformer blocks.
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    #: "auto" (SDPA, or the explicit computation where that is faster: bf16 on CPU, short sequences),
    #: "sdpa" (fused F.scaled_dot_product_attention) or "manual" (reference).
    attn_impl: str = "auto"
    #: GELU of every MLP: "none" (exact; the faster one on CPU) or "tanh" (approximation, as GPT-2 and AstroPT).
    gelu: str = "none"
    #: Block whose output is pooled into embeddings: an index (negative from the end), None for the
    #: middle block (depth // 2), or "final" for the last block's output after the final LayerNorm.
    embed_layer: int | str | None = None
    #: "mean" of a modality's real tokens, or its "last" real token.
    embed_reduction: str = "mean"
    #: L2-normalize the embeddings (unit vectors, as ``AstroFM``'s, which the embedding store expects).
    embed_normalize: bool = True
    version: str = __version__

    def __post_init__(self) -> None:
        order = self.sequence_order
        if sorted(order) != sorted(self.modalities) or len(set(order)) != len(order):
            raise ConfigError(f"AR order {order} must list each modality {sorted(self.modalities)} once")
        if self.embed_reduction not in EMBED_REDUCTIONS:
            raise ConfigError(f"embed_reduction must be one of {EMBED_REDUCTIONS}, not {self.embed_reduction!r}")
        if self.gelu not in GELUS:
            raise ConfigError(f"gelu must be one of {GELUS}, not {self.gelu!r}")
        if isinstance(self.embed_layer, str) and self.embed_layer != "final":
            raise ConfigError(f"embed_layer must be a block index, None or 'final', not {self.embed_layer!r}")
        if isinstance(self.embed_layer, int) and not -self.depth <= self.embed_layer < self.depth:
            raise ConfigError(f"embed_layer {self.embed_layer} is not a block of a depth-{self.depth} model")

    @property
    def sequence_order(self) -> list[str]:
        return list(self.order) if self.order is not None else list(self.modalities)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_type": MODEL_TYPE,
            "modalities": {name: {"tokenizer": m.tokenizer, "config": dict(m.config), "transforms": list(m.transforms)}
                           for name, m in self.modalities.items()},
            "order": self.order, "dim": self.dim, "depth": self.depth, "heads": self.heads,
            "mlp_ratio": self.mlp_ratio, "dropout": self.dropout, "attn_impl": self.attn_impl, "gelu": self.gelu,
            "embed_layer": self.embed_layer, "embed_reduction": self.embed_reduction,
            "embed_normalize": self.embed_normalize, "version": self.version,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ARConfig:
        values = dict(values)
        kind = values.pop("model_type", MODEL_TYPE)
        if kind != MODEL_TYPE:
            raise ConfigError(f"not an AR model config (model_type {kind!r})")
        raw = values.pop("modalities", None)
        if not raw:
            raise ConfigError("an AR model config needs at least one modality under 'modalities'")
        known = {"order", "dim", "depth", "heads", "mlp_ratio", "dropout", "attn_impl", "gelu", "embed_layer",
                 "embed_reduction", "embed_normalize", "version"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown AR model option(s) {unknown}; known: {sorted(known)}")
        modalities = {}
        for name, spec in raw.items():
            spec = dict(spec)
            if "tokenizer" not in spec:
                raise ConfigError(f"AR modality '{name}' needs a 'tokenizer' name")
            modalities[name] = ARModalityConfig(spec.pop("tokenizer"), dict(spec.pop("config", {}) or {}),
                                                list(spec.pop("transforms", []) or []))
            if spec:
                raise ConfigError(f"AR modality '{name}': unknown option(s) {sorted(spec)}")
        return cls(modalities, **values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> ARConfig:
        return cls.from_dict(json.loads(text))


@dataclass
class Prediction:
    """Next-token predictions of one modality over the P objects that have it."""

    predicted: Tensor  # (P, L, F)
    target: Tensor  # (P, L, F) the token values
    weight: Tensor | None  # (P, L, F) loss weights (None: 1)
    valid: Tensor  # (P, L) bool: a real token with a real token before it in its sequence


@dataclass
class TokenSequence:
    """The batch's token sequences: inputs (B, S, D) in packed order, and how to undo the packing."""

    x: Tensor
    #: (B, S) gather index packed <- unpacked; None when every token is real (no packing needed).
    perm: Tensor | None
    #: (B, S) place of each (unpacked) token in its packed row.
    rank: Tensor
    #: (B,) real tokens per row.
    lengths: Tensor
    #: Unpacked column range [start, stop) of each modality.
    spans: dict[str, tuple[int, int]]

    def unpack(self, packed: Tensor) -> Tensor:
        """(B, S, ...) in packed order -> unpacked (modalities side by side)."""
        if self.perm is None:
            return packed
        index = self.perm.reshape(*self.perm.shape, *([1] * (packed.ndim - 2))).expand_as(packed)
        return torch.empty_like(packed).scatter_(1, index, packed)


def pack(x: Tensor, real: Tensor) -> TokenSequence:
    """Move each row's real tokens to its front, keeping their order; ``spans`` left empty."""
    arange = torch.arange(real.shape[1], device=real.device).expand_as(real)
    lengths = real.sum(dim=1)
    if bool(real.all()):
        return TokenSequence(x, None, arange, lengths, {})
    perm = torch.argsort((~real).to(torch.int8), dim=1, stable=True)
    rank = torch.empty_like(perm).scatter_(1, perm, arange)
    return TokenSequence(x.gather(1, perm[..., None].expand_as(x)), perm, rank, lengths, {})


def _rows(batch: Batch, modality: str, device: torch.device) -> Tensor | slice:
    """Batch rows of the objects that have ``modality`` (a plain slice when every object has it)."""
    mb = batch.modalities[modality]
    return slice(None) if bool(mb.presence.all()) else mb.index.to(device)


class ARModel(Preprocessing, nn.Module):
    """Per-modality tokenizers (embedder, head, modality embedding) around one causal transformer."""

    def __init__(self, config: ARConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizers = nn.ModuleDict({
            name: create_tokenizer(spec.tokenizer, dim=config.dim, gelu=config.gelu, **spec.config)
            for name, spec in config.modalities.items()})
        self.trunk = Transformer(config.dim, config.depth, config.heads, mlp_ratio=config.mlp_ratio,
                                 dropout=config.dropout, impl=config.attn_impl, gelu=config.gelu)
        self._transform: SampleTransform | None = None
        self.apply(self._init_weights)
        for block in self.trunk.blocks:  # GPT-2: residual projections scaled down with depth
            for proj in (block.attn.out, block.mlp[-1]):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * config.depth))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    @classmethod
    def from_config(cls, config: ARConfig | Mapping[str, Any]) -> ARModel:
        """A freshly initialized model of the given architecture."""
        return cls(config if isinstance(config, ARConfig) else ARConfig.from_dict(config))

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities in sequence order."""
        return tuple(self.config.sequence_order)

    @property
    def embed_dim(self) -> int:
        return self.config.dim

    def tokenizer(self, modality: str) -> ARTokenizer:
        return self.tokenizers[modality]  # type: ignore[return-value]

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # -- sequences ------------------------------------------------------------------------------------
    def tokenize(self, batch: Batch, modalities: Sequence[str] | None = None) -> dict[str, Tokens]:
        """Tokens of the model modalities in the batch (in sequence order; ``modalities`` restricts them)."""
        keep = self.modalities if modalities is None else [m for m in self.modalities if m in modalities]
        return {name: self.tokenizer(name).tokenize(batch.modalities[name]) for name in keep
                if name in batch.modalities}

    def sequence(self, batch: Batch, tokens: Mapping[str, Tokens]) -> TokenSequence:
        """Embedded tokens of every object, modalities side by side, then packed (real tokens first)."""
        parts, reals, spans, start = [], [], {}, 0
        n = len(batch)
        for name, tok in tokens.items():
            embedded = self.tokenizer(name).embed(tok.values, tok.position)
            length = embedded.shape[1]
            if len(embedded) == n:  # every object has the modality
                parts.append(embedded)
                reals.append(tok.mask)
            else:
                index = batch.modalities[name].index.to(tok.values.device)
                parts.append(embedded.new_zeros(n, length, embedded.shape[-1]).index_copy(0, index, embedded))
                reals.append(tok.mask.new_zeros(n, length).index_copy(0, index, tok.mask))
            spans[name] = (start, start + length)
            start += length
        if not parts:
            raise ConfigError(f"the batch has none of the model's modalities {list(self.modalities)}")
        dtype = parts[0].dtype
        for part in parts[1:]:
            dtype = torch.promote_types(dtype, part.dtype)
        sequence = pack(torch.cat([p.to(dtype) for p in parts], dim=1), torch.cat(reals, dim=1))
        sequence.spans = spans
        return sequence

    def run_blocks(self, x: Tensor, stop: int | None = None) -> Tensor:
        """Packed inputs (B, S, D) through the causal blocks [0, stop) -> hidden states (B, S, D)."""
        for block in self.trunk.blocks[:stop]:
            x = block(x, causal=True)
        return x

    # -- training -------------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> dict[str, Prediction]:
        """Next-token predictions of every model modality in the batch."""
        tokens = self.tokenize(batch)
        sequence = self.sequence(batch, tokens)
        hidden = self.trunk.norm(self.run_blocks(sequence.x))
        previous = sequence.unpack(F.pad(hidden[:, :-1], (0, 0, 1, 0)))  # the state before each token
        has_previous = sequence.rank > 0
        out = {}
        for name, tok in tokens.items():
            rows = _rows(batch, name, previous.device)
            start, stop = sequence.spans[name]
            predicted = self.tokenizer(name).predict(previous[rows, start:stop])
            valid = tok.mask & has_previous[rows, start:stop]
            out[name] = Prediction(predicted, tok.values, tok.weight, valid)
        return out

    # -- embeddings -----------------------------------------------------------------------------------
    def embed_stop(self) -> int:
        """Number of blocks run for embeddings."""
        layer = self.config.embed_layer
        if layer is None:
            return self.config.depth // 2 + 1
        if layer == "final":
            return self.config.depth
        return int(layer) % self.config.depth + 1

    def hidden_states(self, batch: Batch, modalities: Sequence[str] | None = None
                      ) -> tuple[dict[str, Tokens], TokenSequence, Tensor]:
        """Tokens, their sequence and the unpacked hidden states (B, S, D) at the embedding layer."""
        tokens = self.tokenize(batch, modalities)
        sequence = self.sequence(batch, tokens)
        hidden = self.run_blocks(sequence.x, self.embed_stop())
        if self.config.embed_layer == "final":
            hidden = self.trunk.norm(hidden)
        return tokens, sequence, sequence.unpack(hidden)

    @torch.no_grad()
    def embed(self, batch: Batch | Sequence[Sample], modalities: Sequence[str] | None = None
              ) -> dict[str, Tensor]:
        """(B, D) embeddings per modality, NaN rows for objects without it or without a real token of it
        (eval mode, no grad).

        Every modality of the batch takes part in the sequence (later modalities see earlier ones).
        Accepts a ``Batch`` (already transformed) or raw samples (preprocessed here).
        """
        if not isinstance(batch, Batch):
            batch = self.preprocess(batch)
        device = next(self.parameters()).device
        batch = batch.to(device)
        with eval_mode(self):
            tokens, sequence, hidden = self.hidden_states(batch)
        out = {}
        for name in modalities or self.modalities:
            full = torch.full((len(batch), self.embed_dim), math.nan, device=device)
            if name in tokens:
                start, stop = sequence.spans[name]
                index = batch.modalities[name].index.to(device)
                states, mask = hidden[_rows(batch, name, device), start:stop], tokens[name].mask
                if self.config.embed_reduction == "mean":
                    pooled = masked_mean(states, mask)
                else:
                    last = (mask.long().cumsum(dim=1).argmax(dim=1))  # the last real token
                    pooled = states[torch.arange(len(states), device=device), last]
                pooled = pooled.float()
                pooled = F.normalize(pooled, dim=-1) if self.config.embed_normalize else pooled
                full[index] = pooled.masked_fill(~mask.any(dim=1, keepdim=True), math.nan)  # no real token
            out[name] = full
        return out
