"""``FineTuneModule``: one or more encoders plus a head trained on labels.

The supervised baseline (from scratch) and the AstroM³ fine-tuning protocol
(from a CLIP-pretrained model, ``init_from``): the pooled outputs of the
chosen modalities' encoders are concatenated, layer-normalized and fed to an
MLP head. Objects that lack one of the modalities or the label are left out
of the loss (per object, no host sync).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from astrofm.data.batch import Batch
from astrofm.errors import ConfigError
from astrofm.nn import build_mlp, eval_mode
from astrofm.training.module import ModelModule
from astrofm.training.optim import OptimizerConfig

TASKS = ("classification", "regression")


def encode_labels(values: Tensor | list[Any], classes: Sequence[str] | None, device: torch.device
                  ) -> tuple[Tensor, Tensor]:
    """Batch targets -> (labels (B,), valid (B,)): class indices (with ``classes``) or float values."""
    if classes is None:
        labels = values if isinstance(values, Tensor) else torch.tensor(
            [math.nan if v is None else float(v) for v in values], dtype=torch.float64)
        labels = labels.to(device)
        return labels.float(), torch.isfinite(labels)
    names = np.asarray([_class_name(c) for c in classes], dtype=str)
    order = np.argsort(names)
    raw = np.asarray([_class_name(v) for v in (values.tolist() if isinstance(values, Tensor) else values)], dtype=str)
    pos = np.clip(np.searchsorted(names[order], raw), 0, len(names) - 1)
    valid = names[order][pos] == raw
    labels = torch.from_numpy(np.where(valid, order[pos], 0)).to(device)
    return labels, torch.from_numpy(valid).to(device)


def _class_name(value: Any) -> str:
    """A class label as text: whole numbers without a decimal point (a numeric catalog column collates to
    float, so class 2 arrives as 2.0), "" for a missing label."""
    if value is None:
        return ""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        number = float(value)
        if not math.isfinite(number):
            return ""
        return str(int(number)) if number.is_integer() else str(number)
    return str(value)


class FineTuneModule(ModelModule):
    """Encoders of ``modalities`` -> concatenated pooled features -> MLP head, trained on ``target``.

    Parameters
    ----------
    astrofm:
        The ``AstroFMConfig`` (dict); only the chosen modalities' encoders are trained.
    modalities:
        Modalities whose encoders feed the head (all must be present for an object to count).
    target:
        Name of the batch target (a catalog column of the data).
    task:
        "classification" (cross-entropy over ``classes``) or "regression" (MSE on standardized values).
    classes:
        Class labels as they appear in the target (classification).
    init_from:
        Pretrained weights (safetensors / model folder / checkpoint); None trains from scratch.
    freeze:
        Train only the head (linear/MLP probe on frozen features).
    head_hidden:
        Hidden widths of the head.
    dropout:
        Dropout in the head.
    """

    def __init__(self, astrofm: dict[str, Any], modalities: list[str], target: str, *,
                 task: str = "classification", classes: list[str] | None = None, init_from: str | None = None,
                 freeze: bool = False, head_hidden: list[int] | None = None, dropout: float = 0.1,
                 optimizer: OptimizerConfig | None = None, compile: bool = False,
                 target_mean: float = 0.0, target_std: float = 1.0) -> None:
        super().__init__(astrofm, optimizer, compile, init_from)
        if task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, not {task!r}")
        if task == "classification" and not classes:
            raise ConfigError("classification needs the list of classes")
        unknown = [m for m in modalities if m not in self.model.modalities]
        if not modalities or unknown:
            raise ConfigError(f"fine-tuning modalities {unknown or modalities} not in the model "
                              f"{list(self.model.modalities)}")
        self.modalities = list(modalities)
        self.target = target
        self.task = task
        self.classes = list(classes) if classes else None
        self.freeze = freeze
        self.target_mean, self.target_std = target_mean, target_std
        width = sum(self.model.encoder(m).out_dim for m in self.modalities)
        n_out = len(self.classes) if self.classes else 1
        self.norm = nn.LayerNorm(width)
        self.head = build_mlp([width, *(head_hidden if head_hidden is not None else [256]), n_out], dropout=dropout)
        if freeze:
            self.model.requires_grad_(False)
        self.save_hyperparameters({"astrofm": self.model.config.to_dict(), "modalities": self.modalities,
                                   "target": target, "task": task, "classes": self.classes, "init_from": init_from,
                                   "freeze": freeze, "head_hidden": head_hidden, "dropout": dropout,
                                   "optimizer": dataclasses.asdict(self.optim), "compile": compile,
                                   "target_mean": target_mean, "target_std": target_std})

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.freeze:  # a probe on fixed features: the encoders stay deterministic
            self.model.eval()

    def extra_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return list(self.norm.named_parameters()) + list(self.head.named_parameters())

    def forward(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Head outputs (B, n_out) and which objects have every modality (B,)."""
        parts, valid = [], torch.ones(len(batch), dtype=torch.bool, device=self.device)
        for name in self.modalities:
            width = self.model.encoder(name).out_dim
            if name not in batch.modalities:
                parts.append(torch.zeros(len(batch), width, device=self.device))
                valid = torch.zeros_like(valid)
                continue
            mb = batch.modalities[name]
            pooled = self.model.encoder(name)(mb).pooled.float()
            parts.append(pooled.new_zeros(len(batch), width).masked_scatter(mb.presence[:, None], pooled))
            valid = valid & mb.presence
        return self.head(self.norm(torch.cat(parts, dim=-1))), valid

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        if self.target not in batch.targets:
            raise ConfigError(f"target '{self.target}' not in the batch (targets: {sorted(batch.targets)})")
        out, valid = self(batch)
        labels, has_label = encode_labels(batch.targets[self.target], self.classes, out.device)
        weight = (valid & has_label).float()
        if self.task == "classification":
            terms = F.cross_entropy(out.float(), labels, reduction="none")
            hits = (out.argmax(dim=-1) == labels).float()
            metrics = {"acc": (hits * weight).sum() / weight.sum().clamp_min(1)}
        else:
            scaled = (torch.nan_to_num(labels) - self.target_mean) / self.target_std
            terms = (out[:, 0].float() - scaled) ** 2
            metrics = {}
        loss = (terms * weight).sum() / weight.sum().clamp_min(1)
        return loss, {k: v.detach() for k, v in metrics.items()}

    @torch.no_grad()
    def predict_batch(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Predicted class indices or target values (B,), and which objects could be predicted, on the module's
        device (eval mode, no grad; the batch is moved there)."""
        with eval_mode(self):
            out, valid = self(batch.to(self.device))
        if self.task == "classification":
            return out.argmax(dim=-1), valid
        return out[:, 0].float() * self.target_std + self.target_mean, valid

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss, metrics = self.loss(batch)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=len(batch))
        for k, v in metrics.items():
            self.log(f"train/{k}", v, batch_size=len(batch))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss, metrics = self.loss(batch)
        self.log("val/loss", loss.detach(), prog_bar=True, on_epoch=True, batch_size=len(batch), sync_dist=True)
        for k, v in metrics.items():
            self.log(f"val/{k}", v, prog_bar=True, on_epoch=True, batch_size=len(batch), sync_dist=True)
        return loss
