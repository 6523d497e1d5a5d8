"""``astrofm fit --config configs/<name>.yaml``: LightningCLI over the modules and the data module.

The YAML has the usual LightningCLI sections: ``trainer``, ``model``
(``class_path: astrofm.training.PretrainModule`` or ``FineTuneModule`` with
``init_args``), ``data`` (``AstroFMDataModule`` options) and ``seed_everything``.
Stream resume (:class:`StreamResume`) is always on; checkpoints are read with
``weights_only=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.cli import LightningCLI

from astrofm.training.callbacks import StreamResume
from astrofm.training.data import AstroFMDataModule
from astrofm.training.module import ModelModule


class AstroFMCLI(LightningCLI):
    """LightningCLI with astrofm's defaults; ``fit`` reads checkpoints with ``weights_only=True``.

    When resuming (``--ckpt_path``), the config decides the module's options; the checkpoint brings the
    weights, the fitted transform statistics and the loop and stream state (LightningCLI's own merge of
    checkpoint hyperparameters into the config is skipped: it cannot express subclass-mode modules).
    """

    def _parse_ckpt_path(self) -> None:
        return

    def fit(self, model: L.LightningModule, datamodule: L.LightningDataModule | None = None,
            ckpt_path: str | None = None, weights_only: bool | None = None, **kwargs: Any) -> None:
        self.trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path,
                         weights_only=True if weights_only is None else weights_only, **kwargs)


def run(args: Sequence[str], *, subcommand: str = "fit") -> AstroFMCLI:
    """Run a LightningCLI subcommand (``fit``, ``validate``, ``test``) with ``args`` (``--config ...``)."""
    return AstroFMCLI(ModelModule, AstroFMDataModule, subclass_mode_model=True, args=[subcommand, *args],
                      trainer_defaults={"callbacks": [StreamResume()]}, auto_configure_optimizers=False,
                      save_config_kwargs={"overwrite": True})
