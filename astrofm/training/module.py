"""``PretrainModule``: trains an ``AstroFM`` with a pluggable objective.

The model object (``self.model``, an ``AstroFM``) is what users load, embed
with and save; this module only trains it. The objective (``self.objective``)
is a separate component built by name. Before loaders are made, the model's
transforms are fitted on train samples (if they are not already) and handed
to the data module, so that training and inference preprocess alike and the
statistics travel inside the model config.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor

from astrofm.data.batch import Batch
from astrofm.errors import ConfigError
from astrofm.model import AstroFM, AstroFMConfig, model_from_config
from astrofm.objectives import ObjectiveOutput, create_objective
from astrofm.objectives.distributed import local_only
from astrofm.training.export import init_weights
from astrofm.training.optim import OptimizerConfig, configure_optimizers, param_groups

log = logging.getLogger(__name__)

#: Checkpoint key of the model config (fitted transforms included) and the torch RNG state.
CHECKPOINT_KEY = "astrofm"
#: Trainer precisions that cast every batch tensor to 16 bits, wavelengths and times included.
HALF_INPUT_PRECISIONS = ("16-true", "bf16-true")


class ModelModule(L.LightningModule):
    """Shared parts: the wrapped ``AstroFM``, transforms handed to the data, optimizer, checkpoint extras."""

    def __init__(self, astrofm: Mapping[str, Any] | AstroFMConfig, optimizer: OptimizerConfig | None = None,
                 compile: bool = False, init_from: str | None = None) -> None:
        super().__init__()
        # an AstroFM, or an autoregressive ARModel for a config with ``model_type: ar``
        self.model = AstroFM(astrofm) if isinstance(astrofm, AstroFMConfig) else model_from_config(astrofm)
        if init_from:
            untouched = init_weights(self.model, init_from)
            log.info("initialized from %s; %s", init_from,
                     f"left at their initialization: {', '.join(untouched)}" if untouched else "every weight")
        self.optim = optimizer if isinstance(optimizer, OptimizerConfig) else OptimizerConfig(**(optimizer or {}))
        self.compile_model = compile
        self._rng_state: Tensor | None = None
        self._cuda_rng_state: Tensor | None = None

    def setup(self, stage: str) -> None:
        precision = str(self.trainer.precision)
        if precision in HALF_INPUT_PRECISIONS:
            raise ConfigError(f"trainer.precision {precision!r} casts every batch tensor to 16 bits, which rounds "
                              "spectrum wavelengths to tens of Å and light-curve times to days before the encoders "
                              "see them; use 'bf16-mixed' (or '16-mixed'), which keeps inputs in float32")
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and self.model.needs_fit:
            samples = datamodule.fit_samples()
            log.info("fitting the model's transforms on %d train objects", len(samples))
            self.model.fit_transforms(samples)
        self._bind_transform()
        if self.compile_model and stage == "fit":
            if not isinstance(self.model, AstroFM):  # an ARModel calls its blocks one by one
                for block in self.model.trunk.blocks:
                    block.compile(dynamic=True)
                return
            for encoder in self.model.encoders.values():
                trunk = getattr(encoder, "trunk", None)
                (trunk if trunk is not None else encoder).compile(dynamic=True)

    def _bind_transform(self) -> None:
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None:
            datamodule.transform = self.model.transform

    def extra_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """Trainable parameters outside the model (e.g. an objective's temperature)."""
        return []

    def configure_optimizers(self) -> dict[str, Any]:
        named = list(self.model.named_parameters()) + self.extra_parameters()
        total = int(self.trainer.estimated_stepping_batches) if self.optim.total_steps is None else 0
        return configure_optimizers(param_groups(named, self.optim.weight_decay, self.optim.lr), self.optim, total)

    def on_fit_start(self) -> None:
        self.train()  # weights loaded with ``from_pretrained`` come in eval mode
        if self.device.type == "cpu":  # denormal Adam states and activations slow CPU math several-fold
            torch.set_flush_denormal(True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng = {"rng": torch.get_rng_state()}
        if self.device.type == "cuda":  # views and masks drawn on the GPU use its own generator
            rng["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        checkpoint[CHECKPOINT_KEY] = {"config": self.model.config.to_dict(), **rng}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        extra = checkpoint.get(CHECKPOINT_KEY)
        if extra is None:
            return
        config = type(self.model.config).from_dict(extra["config"])
        for name, spec in config.modalities.items():
            self.model.config.modalities[name].transforms = spec.transforms
        self.model._transform = None
        self._bind_transform()
        self._rng_state = extra.get("rng")
        self._cuda_rng_state = extra.get("cuda_rng")

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._rng_state is not None:  # a resumed run draws the random numbers of the uninterrupted one
            torch.set_rng_state(self._rng_state)
            self._rng_state = None
        if self._cuda_rng_state is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(self._cuda_rng_state, self.device)
        self._cuda_rng_state = None

    def log_output(self, stage: str, output: ObjectiveOutput, batch_size: int) -> None:
        on_step = stage == "train"
        self.log(f"{stage}/loss", output.loss.detach(), prog_bar=True, on_step=on_step, on_epoch=not on_step,
                 batch_size=batch_size, sync_dist=not on_step)
        for name, value in output.metrics.items():
            absent = name in output.absent  # a placeholder: weightless in the epoch mean, not a step's value
            if absent and on_step:
                continue
            self.log(f"{stage}/{name}", value, on_step=on_step, on_epoch=not on_step,
                     batch_size=0 if absent else batch_size, sync_dist=not on_step)


class PretrainModule(ModelModule):
    """Self-supervised pretraining of an ``AstroFM`` with a registered objective.

    Parameters
    ----------
    astrofm:
        The ``AstroFMConfig`` (as a dict: modalities with encoder, config, transforms; embed_dim ...), or an
        ``astrofm.ar.ARConfig`` dict (``model_type: ar``) for autoregressive pretraining.
    objective:
        ``{"name": <registered objective>, **options}`` (default: contrastive CLIP over every pair).
    optimizer:
        AdamW + warmup/cosine options.
    compile:
        ``torch.compile`` the encoders' transformer trunks (dynamic shapes).
    init_from:
        Initial model weights: a ``.safetensors`` state dict, a model folder or a Lightning checkpoint. A
        modality it lacks altogether keeps its initialization (a model can start from one with fewer modalities).
    """

    def __init__(self, astrofm: dict[str, Any], objective: dict[str, Any] | None = None,
                 optimizer: OptimizerConfig | None = None, compile: bool = False,
                 init_from: str | None = None) -> None:
        super().__init__(astrofm, optimizer, compile, init_from)
        options = dict(objective or {"name": "contrastive"})
        self.objective = create_objective(options.pop("name", "contrastive"), self.model, **options)
        self.save_hyperparameters({"astrofm": self.model.config.to_dict(), "objective": dict(objective or {}),
                                   "optimizer": dataclasses.asdict(self.optim), "compile": compile,
                                   "init_from": init_from})

    def extra_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        return list(self.objective.named_parameters())

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        output = self.objective(self.model, batch)
        self.log_output("train", output, len(batch))
        return output.loss

    def validation_step(self, batch: Batch, batch_idx: int) -> Tensor:
        # negatives from the local batch only: DDP ranks may hold unequal numbers of validation batches
        with local_only():
            output = self.objective(self.model, batch)
        self.log_output("val", output, len(batch))
        return output.loss
