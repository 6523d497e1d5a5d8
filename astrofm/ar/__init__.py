"""Autoregressive (AstroPT-style) models: tokenizers per modality, a causal transformer, generation.

``ARModel.from_config({"modalities": {"image": {"tokenizer": "image_patches", ...}}, "dim": ...})``
builds a decoder-only model over the token sequences of its modalities; the ``autoregressive``
objective trains it with a next-token regression loss in the same training stack as the contrastive
models (``PretrainModule`` with ``astrofm: {model_type: ar, ...}``), and ``model.embed(batch)``
feeds the same downstream store, probes and search. :func:`generate` continues a partial sequence.
"""

from astrofm.ar.generation import Generated, KVCache, generate
from astrofm.ar.model import ARConfig, ARModalityConfig, ARModel, Prediction, TokenSequence
from astrofm.ar.tokenizers import (
    TOKENIZERS,
    ARTokenizer,
    ExternalTokens,
    ImagePatches,
    LightCurvePoints,
    SpectrumWindows,
    TabularFeatures,
    TokenizerConfig,
    Tokens,
    create_tokenizer,
    patchify,
    register_tokenizer,
    spiral_order,
    unpatchify,
)

__all__ = [
    "TOKENIZERS",
    "ARConfig",
    "ARModalityConfig",
    "ARModel",
    "ARTokenizer",
    "ExternalTokens",
    "Generated",
    "ImagePatches",
    "KVCache",
    "LightCurvePoints",
    "Prediction",
    "SpectrumWindows",
    "TabularFeatures",
    "TokenSequence",
    "TokenizerConfig",
    "Tokens",
    "create_tokenizer",
    "generate",
    "patchify",
    "register_tokenizer",
    "spiral_order",
    "unpatchify",
]
