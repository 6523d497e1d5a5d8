"""Training: LightningModules that wrap ``AstroFM``, the data module, callbacks and the LightningCLI."""

from astrofm.training.callbacks import ExportPretrained, StreamResume
from astrofm.training.data import AstroFMDataModule, DatasetSpec, EpochLoader, SourceSpec
from astrofm.training.export import export_checkpoint, init_weights, load_weights
from astrofm.training.finetune import FineTuneModule
from astrofm.training.module import ModelModule, PretrainModule
from astrofm.training.optim import OptimizerConfig
from astrofm.training.sources import ConcatSource, SubsetSource, hash_split

__all__ = [
    "AstroFMDataModule",
    "ConcatSource",
    "DatasetSpec",
    "EpochLoader",
    "ExportPretrained",
    "FineTuneModule",
    "ModelModule",
    "OptimizerConfig",
    "PretrainModule",
    "SourceSpec",
    "StreamResume",
    "SubsetSource",
    "export_checkpoint",
    "hash_split",
    "init_weights",
    "load_weights",
]
