"""On the tiny simulated universe: the CLI configs train and resume; training reduces the loss and
matched pairs find each other far above chance."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from astrofm.cli import main
from astrofm.training import AstroFMDataModule, PretrainModule
from astrofm.training.cli import latest_last_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["galaxy-clip-tiny", "star-clip-tiny", "all-modalities-tiny"])
def test_cli_fits_and_resumes_each_tiny_config(name: str, tiny_sim: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # logs and checkpoints go to ./runs
    args = ["fit", "--config", str(CONFIGS / f"{name}.yaml"), "--data.root", str(tiny_sim),
            "--trainer.enable_progress_bar", "false", "--trainer.max_steps", "10"]
    assert main(args) == 0
    run = tmp_path / "runs" / name
    checkpoints = sorted(run.glob("tensorboard/version_0/checkpoints/*.ckpt"))
    assert {p.name for p in checkpoints} >= {"epoch=0-step=10.ckpt", "last.ckpt"}
    checkpoint = torch.load(run / "tensorboard/version_0/checkpoints/last.ckpt", weights_only=True)
    assert checkpoint["astrofm"]["config"]["modalities"]  # model config with fitted transforms travels along
    metrics = (run / "csv/version_0/metrics.csv").read_text()
    assert "train/loss" in metrics and "val/loss" in metrics
    # `--ckpt_path last` finds version_0's last.ckpt (Lightning alone would look in version_1 and start afresh)
    assert main([*args[:-1], "12", "--ckpt_path", "last"]) == 0
    resumed = run / "tensorboard/version_1/checkpoints"
    assert torch.load(resumed / "last.ckpt", weights_only=True)["global_step"] == 12
    assert not (resumed / "epoch=0-step=10.ckpt").exists()  # steps 1-10 were not trained again


def test_a_missing_or_truncated_checkpoint_is_refused_before_training(tiny_sim: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(CONFIGS / "galaxy-clip-tiny.yaml"), "--data.root", str(tiny_sim),
            "--trainer.enable_progress_bar", "false", "--trainer.max_steps", "2"]
    assert main([*args, "--ckpt_path", "missing.ckpt"]) == 1
    assert "missing.ckpt: no such checkpoint file" in capsys.readouterr().err
    (tmp_path / "cut.ckpt").write_bytes(b"PK\x03\x04" + bytes(100))  # a zip's first bytes, then nothing
    assert main([*args, "--ckpt_path", "cut.ckpt"]) == 1
    assert "cut.ckpt: not a PyTorch checkpoint" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*/checkpoints"))  # nothing trained


def test_last_checkpoint_is_the_newest_where_the_trainer_writes_them(tmp_path: Path) -> None:
    def touch(path: Path, mtime: float) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (mtime, mtime))
        return path

    plain = L.Trainer(default_root_dir=tmp_path / "plain", logger=False, accelerator="cpu")
    assert latest_last_checkpoint(plain) is None
    newest = touch(tmp_path / "plain/checkpoints/last-v1.ckpt", 2e9)
    touch(tmp_path / "plain/checkpoints/last.ckpt", 1e9)
    assert latest_last_checkpoint(plain) == newest
    fixed = L.Trainer(default_root_dir=tmp_path / "plain", accelerator="cpu",
                      callbacks=[ModelCheckpoint(dirpath=tmp_path / "fixed")])
    assert latest_last_checkpoint(fixed) is None  # only its own folder counts
    own = touch(tmp_path / "fixed/last.ckpt", 1e9)
    assert latest_last_checkpoint(fixed) == own
    logged = L.Trainer(default_root_dir=tmp_path, accelerator="cpu",
                       logger=L.pytorch.loggers.CSVLogger(tmp_path / "logs", name="csv"))
    touch(tmp_path / "logs/csv/version_0/checkpoints/last.ckpt", 1e9)
    newest = touch(tmp_path / "logs/csv/version_3/checkpoints/last.ckpt", 3e9)
    assert latest_last_checkpoint(logged) == newest


def _recall_at_10(z_query: torch.Tensor, z_candidates: torch.Tensor) -> float:
    similarity = z_query @ z_candidates.T
    rank = (similarity > similarity.diag()[:, None]).sum(dim=1)
    return float((rank < 10).float().mean())


@pytest.mark.slow
def test_training_reduces_the_loss_and_retrieval_beats_chance(tiny_sim: Path) -> None:
    config = yaml.safe_load((CONFIGS / "star-clip-tiny.yaml").read_text())
    data = AstroFMDataModule(**{**config["data"], "root": str(tiny_sim)})
    data.setup()
    train, test = data.splits["train"].spread_samples(10**6), data.splits["test"].spread_samples(10**6)
    L.seed_everything(0)
    module = PretrainModule(**{**config["model"]["init_args"], "optimizer": {"lr": 3e-3, "warmup_steps": 10}})
    model = module.model.fit_transforms(train)
    batches = [model.preprocess(train[i:i + 32]) for i in range(0, len(train) - 31, 32)]
    held_out = model.preprocess(test)

    def evaluate() -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            loss = float(module.objective(model, held_out).loss)
            z = model.embed(held_out)
        return loss, _recall_at_10(z["tabular"], z["spectrum"])

    loss_before, recall_before = evaluate()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))  # preprocessed once
    loss_after, recall_after = evaluate()
    chance = 10 / len(test)
    assert loss_after < loss_before - 0.5
    assert recall_after > max(3 * chance, recall_before + 0.2), (recall_before, recall_after, chance)


PLUGIN = '''
from astrofm.objectives import register_objective
from astrofm.objectives.contrastive import ContrastiveObjective

BUILT = []


@register_objective("plugin_contrastive")
class PluginContrastive(ContrastiveObjective):
    @classmethod
    def build(cls, model, **options):
        BUILT.append(sorted(model.modalities))
        return super().build(model, **options)
'''


@pytest.mark.slow
def test_fit_imports_a_user_plugin_that_the_config_names(tiny_sim: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.chdir(tmp_path)  # the plugin module sits in the current directory, as a user's would
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "astrofm_test_plugin.py").write_text(PLUGIN)
    config = yaml.safe_load((CONFIGS / "galaxy-clip-tiny.yaml").read_text())
    config["model"]["init_args"]["objective"] = {"name": "plugin_contrastive"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    args = ["fit", "--config", "config.yaml", "--data.root", str(tiny_sim), "--trainer.enable_progress_bar", "false",
            "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0"]
    assert main(args) == 1  # without the plugin the objective is unknown: a clear error, not a traceback
    assert main(["fit", "--import", "astrofm_test_plugin", *args[1:]]) == 0
    assert sys.modules["astrofm_test_plugin"].BUILT == [["image", "spectrum"]]
    assert main(["fit", "--import", "no_such_astrofm_plugin", *args[1:]]) == 1
    sys.modules.pop("astrofm_test_plugin")
