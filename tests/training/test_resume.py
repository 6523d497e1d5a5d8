"""Resuming mid-epoch reproduces the uninterrupted run: same batches, losses and weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from astrofm.training import AstroFMDataModule, PretrainModule, StreamResume
from astrofm.training import data as training_data
from tests.modalities.factories import tiny_config


class _Record(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []
        self.first_ids: list[str] = []
        self.epochs: list[tuple[int, int]] = []

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.losses.append(float(outputs["loss"]))
        self.first_ids.append(batch.object_id[0])
        self.epochs.append((trainer.current_epoch, batch.stream_state["epoch"]))


def _fit(root: Path, *, save: Path | None = None, ckpt: Path | None = None, track_stream: bool = True,
         ) -> tuple[_Record, PretrainModule]:
    L.seed_everything(0)
    config = tiny_config(("image", "spectrum"), dropout=0.1)
    config["modalities"]["image"]["transforms"].append({"type": "RandomFlipRot90"})
    module = PretrainModule(config, optimizer={"warmup_steps": 2, "total_steps": 12})
    data = AstroFMDataModule(str(root), [{"datasets": {"gal": {"path": "gal"}}}], split=None, batch_size=16,
                             block_size=32, buffer_size=64)
    record = _Record()
    callbacks: list[L.Callback] = [record] + ([StreamResume()] if track_stream else [])
    if save is not None:
        callbacks.append(ModelCheckpoint(dirpath=save, every_n_train_steps=5, save_top_k=-1))
    trainer = L.Trainer(max_steps=12, accelerator="cpu", logger=False, enable_checkpointing=save is not None,
                        callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt, weights_only=True)
    return record, module


def _compare(root: Path, tmp_path: Path, *, track_stream: bool = True) -> tuple[bool, float]:
    full, full_module = _fit(root, save=tmp_path, track_stream=track_stream)
    checkpoint = tmp_path / "epoch=0-step=5.ckpt"
    torch.load(checkpoint, weights_only=True)  # no pickled objects in checkpoints
    resumed, resumed_module = _fit(root, ckpt=checkpoint, track_stream=track_stream)
    assert all(a == b for a, b in full.epochs + resumed.epochs)  # no empty epochs: Lightning's epoch = the stream's
    assert full.epochs[-1][0] == 1  # the runs cross an epoch end (9 batches per epoch)
    same_batches = resumed.first_ids == full.first_ids[5:]
    if same_batches:
        torch.testing.assert_close(torch.tensor(resumed.losses), torch.tensor(full.losses[5:]), atol=1e-6, rtol=1e-6)
    gap = max(float((a - b).detach().abs().max()) for a, b in zip(full_module.parameters(),
                                                                    resumed_module.parameters()))
    return same_batches, gap


@pytest.mark.slow
def test_resume_mid_epoch_reproduces_the_uninterrupted_run(synthetic_root: Path, tmp_path: Path) -> None:
    same_batches, gap = _compare(synthetic_root, tmp_path)  # crosses an epoch end after the resume (9 batches)
    assert same_batches and gap < 1e-6


@pytest.mark.slow
def test_resume_with_a_loader_of_unknown_length(synthetic_root: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Lightning fetches one batch ahead of unsized loaders; StreamResume saves the trained position."""

    def unknown(self: Any) -> int:
        raise TypeError("length unknown")

    monkeypatch.setattr(training_data.EpochLoader, "__len__", unknown)
    same_batches, gap = _compare(synthetic_root, tmp_path / "tracked")
    assert same_batches and gap < 1e-6
    same_batches, gap = _compare(synthetic_root, tmp_path / "untracked", track_stream=False)
    assert not same_batches and gap > 1e-4  # without it one batch is skipped
