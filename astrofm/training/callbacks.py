"""Callbacks: exact mid-epoch resume of streaming loaders; export of the trained model.

Lightning fetches one batch ahead, so when a checkpoint is written the train
loader has already delivered a batch that was not trained on, and its own
``state_dict`` would skip that batch on resume. :class:`StreamResume` keeps
the stream position of the last *trained* batch (``Batch.stream_state``) and
writes that into the checkpoint instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from astrofm.data.batch import Batch
from astrofm.data.streaming import StreamingLoader


class StreamResume(L.Callback):
    """Save the streaming position of the last trained batch, not of the last fetched one."""

    def __init__(self) -> None:
        self.epoch: int | None = None
        self.consumed: dict[int, int] = {}
        self.batches = 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "consumed": {str(k): v for k, v in self.consumed.items()},
                "batches": self.batches}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch = state_dict["epoch"]
        self.consumed = {int(k): int(v) for k, v in state_dict["consumed"].items()}
        self.batches = int(state_dict["batches"])

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        state = batch.stream_state if isinstance(batch, Batch) else None
        if state:
            if state["epoch"] != self.epoch:
                self.epoch, self.consumed, self.batches = state["epoch"], {}, 0
            self.consumed[state["worker"]] = state["emitted"]
            self.batches += 1

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        loader = _stream_loader(trainer)
        states = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {}).get("combined_loader")
        if loader is None or not states or self.epoch is None:
            return
        current = loader.state_dict()
        if current["epoch"] > self.epoch:  # the fetched-ahead batch ended the epoch: the loader state is right
            return
        states[0] = {**current, "epoch": self.epoch, "consumed": {str(k): v for k, v in self.consumed.items()},
                     "batches": self.batches}


def _stream_loader(trainer: L.Trainer) -> StreamingLoader | None:
    loaders = getattr(trainer.fit_loop, "_combined_loader", None)
    flat = loaders.flattened if loaders is not None else []
    return flat[0] if len(flat) == 1 and isinstance(flat[0], StreamingLoader) else None


class ExportPretrained(L.Callback):
    """Save the trained model as a pretrained folder (``save_pretrained``) when fitting ends.

    With it in a config, one ``astrofm fit --config ...`` both trains and publishes a model.
    ``card`` holds :class:`astrofm.hub.pretrained.ModelCard` fields (name, description, training_data,
    objective, metrics, license, command).
    """

    def __init__(self, folder: str, card: dict[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self.card = dict(card or {})

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from astrofm.hub.pretrained import ModelCard, save_pretrained

        card = ModelCard(**{"name": self.folder.name, **self.card})
        save_pretrained(pl_module.model, self.folder, card=card)  # type: ignore[arg-type]
