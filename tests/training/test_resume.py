"""Resuming mid-epoch reproduces the uninterrupted run: same batches, losses and weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from astrofm.training import PretrainModule
from astrofm.training import data as training_data
from tests.helpers.devices import DEVICES
from tests.helpers.resume import Record, fit_twelve_steps
from tests.modalities.factories import tiny_config


def _fit(root: Path, *, save: Path | None = None, ckpt: Path | None = None, track_stream: bool = True,
         accelerator: str = "cpu") -> tuple[Record, PretrainModule]:
    def build() -> PretrainModule:
        config = tiny_config(("image", "spectrum"), dropout=0.1)
        config["modalities"]["image"]["transforms"].append({"type": "RandomFlipRot90"})
        return PretrainModule(config, optimizer={"warmup_steps": 2, "total_steps": 12})

    return fit_twelve_steps(root, build, save=save, ckpt=ckpt, track_stream=track_stream, accelerator=accelerator)


def _compare(root: Path, tmp_path: Path, *, track_stream: bool = True, accelerator: str = "cpu"
             ) -> tuple[bool, float]:
    full, full_module = _fit(root, save=tmp_path, track_stream=track_stream, accelerator=accelerator)
    checkpoint = tmp_path / "epoch=0-step=5.ckpt"
    torch.load(checkpoint, weights_only=True)  # no pickled objects in checkpoints
    resumed, resumed_module = _fit(root, ckpt=checkpoint, track_stream=track_stream, accelerator=accelerator)
    assert all(a == b for a, b in full.epochs + resumed.epochs)  # no empty epochs: Lightning's epoch = the stream's
    assert full.epochs[-1][0] == 1  # the runs cross an epoch end (9 batches per epoch)
    same_batches = resumed.first_ids == full.first_ids[5:]
    if same_batches:
        torch.testing.assert_close(torch.tensor(resumed.losses), torch.tensor(full.losses[5:]), atol=1e-6, rtol=1e-6)
    gap = max(float((a - b).detach().abs().max()) for a, b in zip(full_module.parameters(),
                                                                    resumed_module.parameters()))
    return same_batches, gap


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_resume_mid_epoch_reproduces_the_uninterrupted_run(synthetic_root: Path, tmp_path: Path, device: str) -> None:
    """Dropout draws from the device's generator: on a GPU the CUDA random state is resumed too."""
    same_batches, gap = _compare(synthetic_root, tmp_path, accelerator="gpu" if device == "cuda" else "cpu")
    assert same_batches and gap < 1e-6  # the run crosses an epoch end after the resume (9 batches)


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
