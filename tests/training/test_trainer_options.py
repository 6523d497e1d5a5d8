"""bf16-mixed and fp32, torch.compile, gradient accumulation, clipping and the LR schedule."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import lightning as L
import pytest
import torch

from astrofm.errors import ConfigError
from astrofm.training import AstroFMDataModule, PretrainModule
from astrofm.training.optim import cosine_with_warmup
from tests.helpers.devices import CUDA
from tests.modalities.factories import tiny_config


def test_cosine_schedule_with_warmup() -> None:
    factors = [cosine_with_warmup(s, 4, 20, 0.1) for s in range(25)]
    assert factors[0] == pytest.approx(0.25) and factors[3] == pytest.approx(1.0)
    assert factors[4] == pytest.approx(1.0) and factors[20] == pytest.approx(0.1) and factors[24] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(factors[4:]))
    assert factors[12] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


@pytest.mark.slow
@pytest.mark.parametrize(("accelerator", "precision", "compile"), [
    ("cpu", "bf16-mixed", False), ("cpu", "32-true", True),
    pytest.param("gpu", "bf16-mixed", False, marks=CUDA), pytest.param("gpu", "32-true", True, marks=CUDA)])
def test_training_steps_with_precision_compile_accumulation_and_clipping(
        synthetic_root: Path, accelerator: str, precision: str, compile: bool) -> None:
    L.seed_everything(0)
    module = PretrainModule(tiny_config(("image", "spectrum")), compile=compile,
                            optimizer={"warmup_steps": 1, "lr": 1e-2})
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    data = AstroFMDataModule(str(synthetic_root), [{"datasets": {"gal": {"path": "gal"}}}], split=None, batch_size=16)
    trainer = L.Trainer(max_steps=2, accelerator=accelerator, precision=precision, accumulate_grad_batches=2,
                        gradient_clip_val=0.5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=1, val_check_interval=4)
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 2 and trainer.fit_loop.epoch_loop._batches_that_stepped == 2
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert "val/loss" in trainer.callback_metrics
    changed = [not torch.equal(v.cpu(), before[k]) for k, v in module.model.state_dict().items()]
    assert all(changed)
    assert trainer.lr_scheduler_configs[0].scheduler.get_last_lr()[0] < 1e-2  # the cosine has started


@pytest.mark.parametrize("precision", ["bf16-true", "16-true"])
def test_half_true_precision_is_refused_before_it_rounds_wavelengths(synthetic_root: Path, precision: str) -> None:
    module = PretrainModule(tiny_config(("image", "spectrum")))
    data = AstroFMDataModule(str(synthetic_root), [{"datasets": {"gal": {"path": "gal"}}}], split=None, batch_size=16)
    trainer = L.Trainer(max_steps=1, accelerator="cpu", precision=precision, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    with pytest.raises(ConfigError, match="bf16-mixed"):
        trainer.fit(module, datamodule=data)
