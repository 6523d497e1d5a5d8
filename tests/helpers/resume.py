"""A short Lightning run on a synthetic MMU folder that records its batches, for resume-equals-uninterrupted tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from astrofm.training import AstroFMDataModule, PretrainModule, StreamResume


class Record(L.Callback):
    """Per trained batch: the loss, the first object id, and (Lightning epoch, stream epoch)."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.first_ids: list[str] = []
        self.epochs: list[tuple[int, int]] = []

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.losses.append(float(outputs["loss"]))
        self.first_ids.append(batch.object_id[0])
        self.epochs.append((trainer.current_epoch, batch.stream_state["epoch"]))


def fit_twelve_steps(root: Path, build: Callable[[], PretrainModule], *, save: Path | None = None,
                     ckpt: Path | None = None, track_stream: bool = True, accelerator: str = "cpu"
                     ) -> tuple[Record, PretrainModule]:
    """Seed, build the module, and train 12 steps on ``root/gal`` (batches of 16) on ``accelerator``,
    checkpointing every 5 steps into ``save`` or resuming from ``ckpt``."""
    L.seed_everything(0)
    module = build()
    data = AstroFMDataModule(str(root), [{"datasets": {"gal": {"path": "gal"}}}], split=None, batch_size=16,
                             block_size=32, buffer_size=64)
    record = Record()
    callbacks: list[L.Callback] = [record] + ([StreamResume()] if track_stream else [])
    if save is not None:
        callbacks.append(ModelCheckpoint(dirpath=save, every_n_train_steps=5, save_top_k=-1))
    trainer = L.Trainer(max_steps=12, accelerator=accelerator, devices=1, logger=False,
                        enable_checkpointing=save is not None, callbacks=callbacks, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt, weights_only=True)
    return record, module
