"""AR models in the training stack: the loss falls on the tiny universe, resume equals an uninterrupted run, CLI."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from astrofm.ar import ARModel
from astrofm.cli import main
from astrofm.training import AstroFMDataModule, PretrainModule
from tests.ar.factories import tiny_ar_config
from tests.helpers.resume import Record, fit_twelve_steps

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["galaxy-ar-tiny", "galaxy-ar-multimodal-tiny"])
def test_training_reduces_the_held_out_loss_on_the_tiny_sim(name: str, tiny_sim: Path) -> None:
    config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    data = AstroFMDataModule(**{**config["data"], "root": str(tiny_sim)})
    data.setup()
    train, test = data.splits["train"].spread_samples(10**6), data.splits["test"].spread_samples(10**6)
    L.seed_everything(0)
    module = PretrainModule(**{**config["model"]["init_args"], "optimizer": {"lr": 3e-3, "warmup_steps": 10}})
    model = module.model.fit_transforms(train)
    assert isinstance(model, ARModel)
    rng = np.random.default_rng(0)
    batches = [model.preprocess(train[i:i + 32], rng) for i in range(0, len(train) - 31, 32)]
    held_out = model.preprocess(test)

    def held_out_loss() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            out = module.objective(model, held_out)
        return {"total": float(out.loss), **{k: float(v) for k, v in out.metrics.items() if k.startswith("loss/")}}

    before = held_out_loss()
    trainer = L.Trainer(max_steps=60, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    after = held_out_loss()
    for key in before:
        assert after[key] < 0.95 * before[key], (key, before, after)


def _fit(root: Path, *, save: Path | None = None, ckpt: Path | None = None) -> tuple[Record, PretrainModule]:
    def build() -> PretrainModule:
        config = tiny_ar_config(("image", "spectrum"), dropout=0.1)
        config["modalities"]["image"]["transforms"].append({"type": "RandomFlipRot90"})
        return PretrainModule(config, objective={"name": "autoregressive"},
                              optimizer={"warmup_steps": 2, "total_steps": 12})

    return fit_twelve_steps(root, build, save=save, ckpt=ckpt)


def test_resume_mid_epoch_equals_the_uninterrupted_run(synthetic_root: Path, tmp_path: Path) -> None:
    full, full_module = _fit(synthetic_root, save=tmp_path)
    checkpoint = tmp_path / "epoch=0-step=5.ckpt"
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["astrofm"]["config"]["model_type"] == "ar"
    resumed, resumed_module = _fit(synthetic_root, ckpt=checkpoint)
    assert resumed.first_ids == full.first_ids[5:]  # the same batches, crossing an epoch end (7 per epoch)
    torch.testing.assert_close(torch.tensor(resumed.losses), torch.tensor(full.losses[5:]), atol=1e-6, rtol=1e-6)
    gap = max((a - b).abs().max().item() for a, b in zip(full_module.parameters(), resumed_module.parameters()))
    assert gap < 1e-6
    assert len(set(full.losses)) == len(full.losses)  # the runs really trained


@pytest.mark.slow
def test_cli_fits_and_resumes_the_multimodal_tiny_config(tiny_sim: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    name = "galaxy-ar-multimodal-tiny"
    args = ["fit", "--config", str(CONFIGS / f"{name}.yaml"), "--data.root", str(tiny_sim),
            "--trainer.enable_progress_bar", "false", "--trainer.val_check_interval", "5", "--trainer.max_steps", "10"]
    assert main(args) == 0
    checkpoints = tmp_path / "runs" / name / "tensorboard" / "version_0" / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert last["astrofm"]["config"]["model_type"] == "ar"
    assert last["astrofm"]["config"]["modalities"]["spectrum"]["transforms"][0]["type"] == "MaskBadPixels"
    metrics = (tmp_path / "runs" / name / "csv" / "version_0" / "metrics.csv").read_text()
    assert "train/loss/spectrum" in metrics and "val/loss/image" in metrics
    assert main([*args[:-1], "12", "--ckpt_path", str(checkpoints / "last.ckpt")]) == 0
    assert torch.load(tmp_path / "runs" / name / "tensorboard" / "version_1" / "checkpoints" / "last.ckpt",
                      weights_only=True)["global_step"] == 12
