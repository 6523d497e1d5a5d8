"""AdamW with decoupled weight decay on matrices only, and cosine decay after linear warmup."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class OptimizerConfig:
    """AdamW and schedule options (learning rates are peak values)."""

    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    #: Linear warmup steps (optimizer steps, after gradient accumulation).
    warmup_steps: int = 100
    #: Final learning rate as a fraction of the peak.
    min_lr_ratio: float = 0.05
    #: Steps of the cosine; None: the trainer's estimated total steps.
    total_steps: int | None = None


def param_groups(named: Iterable[tuple[str, nn.Parameter]], weight_decay: float, lr: float,
                 ) -> list[dict[str, Any]]:
    """Two groups: weight decay on >= 2-d weights; none on biases, norms, embeddings' scalars, temperatures."""
    decay, no_decay = [], []
    for _, p in named:
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay, "lr": lr},
            {"params": no_decay, "weight_decay": 0.0, "lr": lr}]


def cosine_with_warmup(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Learning-rate factor at ``step``: linear 0 -> 1 over warmup, then cosine 1 -> min_lr_ratio."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def configure_optimizers(groups: list[dict[str, Any]], config: OptimizerConfig, total_steps: int
                         ) -> dict[str, Any]:
    """Lightning's ``configure_optimizers`` result: AdamW (multi-tensor) + per-step LambdaLR schedule.

    (A fused AdamW would be marginally faster, but Lightning refuses gradient clipping with it.)
    """
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, foreach=True)
    total = config.total_steps or total_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_with_warmup(step, config.warmup_steps, total, config.min_lr_ratio))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
