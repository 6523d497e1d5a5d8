"""Shared building blocks: masked attention, transformer blocks, pooling, projection heads, encodings."""

from astrofm.nn.attention import ATTENTION_IMPLS, MultiheadAttention, attend, causal_mask, key_padding_mask
from astrofm.nn.encoding import ContinuousEncoding
from astrofm.nn.heads import ProjectionHead, build_mlp
from astrofm.nn.mode import eval_mode
from astrofm.nn.pooling import POOLS, AttentionPool, MaskedMeanPool, create_pool, masked_mean
from astrofm.nn.transformer import Block, Transformer

__all__ = [
    "ATTENTION_IMPLS",
    "POOLS",
    "AttentionPool",
    "Block",
    "ContinuousEncoding",
    "MaskedMeanPool",
    "MultiheadAttention",
    "ProjectionHead",
    "Transformer",
    "attend",
    "build_mlp",
    "causal_mask",
    "create_pool",
    "eval_mode",
    "key_padding_mask",
    "masked_mean",
]
