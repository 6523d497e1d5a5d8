"""``astrofm fit --config configs/<name>.yaml``: LightningCLI over the modules and the data module.

The YAML has the usual LightningCLI sections: ``trainer``, ``model``
(``class_path: astrofm.training.PretrainModule`` or ``FineTuneModule`` with
``init_args``), ``data`` (``AstroFMDataModule`` options) and ``seed_everything``.
Stream resume (:class:`StreamResume`) is always on; checkpoints are read with
``weights_only=True``. ``--ckpt_path last`` resumes from the newest ``last.ckpt`` of the run's earlier
versions (Lightning alone looks only in the new version's folder, finds nothing and starts afresh).
``--import MODULE`` (repeatable) imports a module of your own first, so that the encoders, transforms,
objectives or data modalities it registers can be named in the config. A bf16 ``trainer.precision`` trains
in ``32-true`` on a CPU without native bf16, where emulated bf16 is several times slower (with a warning).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.cli import LightningCLI

from astrofm.errors import AstrofmError, ConfigError
from astrofm.training.callbacks import StreamResume
from astrofm.training.data import AstroFMDataModule
from astrofm.training.export import check_checkpoint_file
from astrofm.training.module import ModelModule
from astrofm.utils.precision import fit_precision

log = logging.getLogger(__name__)


class AstroFMCLI(LightningCLI):
    """LightningCLI with astrofm's defaults; ``fit`` reads checkpoints with ``weights_only=True``.

    When resuming (``--ckpt_path``), the config decides the module's options; the checkpoint brings the
    weights, the fitted transform statistics and the loop and stream state (LightningCLI's own merge of
    checkpoint hyperparameters into the config is skipped: it cannot express subclass-mode modules).
    """

    def _parse_ckpt_path(self) -> None:
        return

    def before_instantiate_classes(self) -> None:
        """bf16 precisions train in 32-true on a CPU without native bf16 (see :func:`fit_precision`)."""
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        trainer = config.get("trainer")
        if trainer is not None and trainer.get("precision") is not None:
            trainer["precision"] = fit_precision(str(trainer["precision"]), trainer.get("accelerator") or "auto")

    def fit(self, model: L.LightningModule, datamodule: L.LightningDataModule | None = None,
            ckpt_path: str | None = None, weights_only: bool | None = None, **kwargs: Any) -> None:
        if ckpt_path == "last":
            latest = latest_last_checkpoint(self.trainer)
            if latest is not None:
                log.info("--ckpt_path last: resuming from %s", latest)
                ckpt_path = str(latest)
        elif ckpt_path is not None and ckpt_path not in LIGHTNING_CKPT_NAMES and "://" not in ckpt_path:
            check_checkpoint_file(Path(ckpt_path))
        self.trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path,
                         weights_only=True if weights_only is None else weights_only, **kwargs)


#: ``--ckpt_path`` values that Lightning resolves itself (``last`` is resolved here first).
LIGHTNING_CKPT_NAMES = frozenset({"last", "best", "hpc", "registry"})


def latest_last_checkpoint(trainer: L.Trainer) -> Path | None:
    """The newest ``last*.ckpt`` where this trainer's runs write checkpoints: a ModelCheckpoint's own
    ``dirpath``, else ``<first logger's root>/<version>/checkpoints`` of every version, else
    ``<default_root_dir>/checkpoints``; None if there is none."""
    folders = [Path(c.dirpath) for c in trainer.checkpoint_callbacks if getattr(c, "dirpath", None)]
    if folders:
        found = [p for folder in folders for p in folder.glob("last*.ckpt")]
    elif trainer.loggers and trainer.loggers[0].root_dir:
        found = list(Path(trainer.loggers[0].root_dir).glob("*/checkpoints/last*.ckpt"))
    else:
        found = list(Path(trainer.default_root_dir, "checkpoints").glob("last*.ckpt"))
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def import_plugins(args: Sequence[str]) -> list[str]:
    """Import every module named by ``--import MODULE`` or ``--import=MODULE``; return the other arguments.

    Modules are found on ``sys.path`` and in the current directory (as ``python -m`` would). Lightning's
    multi-device launcher re-runs the same command on each device, so the imports happen there too.
    """
    rest: list[str] = []
    args = list(args)
    while args:
        arg = args.pop(0)
        if arg == "--import":
            if not args:
                raise ConfigError("--import needs a module name")
            name = args.pop(0)
        elif arg.startswith("--import="):
            name = arg.partition("=")[2]
        else:
            rest.append(arg)
            continue
        if os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ConfigError(f"--import {name}: {error}") from None
    return rest


def run(args: Sequence[str], *, subcommand: str = "fit") -> AstroFMCLI:
    """Run a LightningCLI subcommand (``fit``, ``validate``, ``test``) with ``args`` (``--config ...``),
    after the ``--import`` modules among them."""
    args = import_plugins(args)
    try:
        with warnings.catch_warnings():
            # `astrofm fit ...` hands LightningCLI the arguments that sys.argv also holds (kept whole for the
            # multi-device launcher, which re-runs the command): intended here
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
            return AstroFMCLI(ModelModule, AstroFMDataModule, subclass_mode_model=True, args=[subcommand, *args],
                              trainer_defaults={"callbacks": [StreamResume()]}, auto_configure_optimizers=False,
                              save_config_kwargs={"overwrite": True})
    except ValueError as error:  # jsonargparse wraps our errors (e.g. an unknown encoder) in its own
        cause = error.__cause__
        while cause is not None and not isinstance(cause, AstrofmError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None
