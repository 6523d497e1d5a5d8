"""Training: LightningModules that wrap ``AstroFM``, the data module, callbacks and the LightningCLI."""

from astrofm.training.callbacks import StreamResume
from astrofm.training.data import AstroFMDataModule, DatasetSpec, EpochLoader, SourceSpec
from astrofm.training.export import load_model, load_weights, save_model
from astrofm.training.finetune import FineTuneModule
from astrofm.training.module import ModelModule, PretrainModule
from astrofm.training.optim import OptimizerConfig
from astrofm.training.sources import ConcatSource, SubsetSource, hash_split

__all__ = [
    "AstroFMDataModule",
    "ConcatSource",
    "DatasetSpec",
    "EpochLoader",
    "FineTuneModule",
    "ModelModule",
    "OptimizerConfig",
    "PretrainModule",
    "SourceSpec",
    "StreamResume",
    "SubsetSource",
    "hash_split",
    "load_model",
    "load_weights",
    "save_model",
]
