"""Training inside the demo: the all-modalities model of ``--train``, and the tiny AR model of the AR demo.

``--train`` trains the contrastive all-modalities model from scratch with Lightning on the universe's
train split, within a time budget, checkpointing as it goes (a killed run resumes from the last
checkpoint), and saves it as a pretrained folder. The recipe per preset has the layout and objective of
``configs/astrofm-sim-small.yaml`` (the shipped model; all four modalities), at a width that trains on 2
CPU cores in about a minute (``tiny``) or a quarter of an hour (``small``); ``--config`` trains the model
of any LightningCLI YAML (e.g. ``configs/all-modalities-tiny.yaml``) instead.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astrofm.demo import data as D
from astrofm.errors import ConfigError
from astrofm.utils.precision import fit_precision

log = logging.getLogger(__name__)


def _architecture(dim: int, depth: int, embed_dim: int, patch: int, step: float, max_points: int) -> dict[str, Any]:
    """The layout of ``configs/astrofm-sim-small.yaml`` (32-px centre crops, one spectrum encoder for both
    spectrographs, light curves, Gaia-like metadata) at another width and depth."""
    trunk = {"dim": dim, "depth": depth, "heads": 4 if dim >= 64 else 2}
    return {
        "embed_dim": embed_dim,
        "modalities": {
            "image": {"encoder": "image_vit",
                      "config": {**trunk, "in_chans": 4, "img_size": 32, "patch_size": patch},
                      "transforms": [{"type": "CenterCrop", "size": 32}, {"type": "ArcsinhScale"},
                                     {"type": "RandomFlipRot90"}]},
            "spectrum": {"encoder": "spectrum",
                         "config": {**trunk, "window": 32, "context_fields": {"log_norm": 1}},
                         "transforms": [{"type": "MaskBadPixels"},
                                        {"type": "Resample", "start": 3600.0, "stop": 9824.0, "step": step},
                                        {"type": "IvarNormalize"}]},
            "lightcurve": {"encoder": "lightcurve",
                           "config": {**trunk, "n_bands": 2, "context_fields": {"log_scale": 2}},
                           "transforms": [{"type": "TimeZeroPoint"}, {"type": "PerBandNormalize"},
                                          {"type": "LengthCap", "max_points": max_points}]},
            "tabular": {"encoder": "tabular",
                        "config": {**trunk, "n_features": len(D.TABULAR_COLUMNS)},
                        "transforms": [{"type": "Standardize"}]},
        },
    }


#: The contrastive objective of ``configs/astrofm-sim-small.yaml``.
OBJECTIVE: dict[str, Any] = {
    "name": "contrastive", "per_pair_temperature": True, "temperature": 0.07,
    "views": {"spectrum": {"fraction": 0.5, "block": 128, "complement": True, "hide": ["log_norm"]},
              "lightcurve": {"fraction": 0.5, "block": 20, "complement": True, "hide": ["log_scale"]}},
}

#: Per preset: the model, objective, optimizer, batch size, steps, minutes and precision of ``--train``.
RECIPES: dict[str, dict[str, Any]] = {
    "tiny": {"astrofm": _architecture(32, 1, 32, 8, 4.0, 64), "objective": OBJECTIVE,
             "optimizer": {"lr": 2e-3, "warmup_steps": 20, "min_lr_ratio": 0.05}, "batch_size": 64,
             "max_steps": 300, "minutes": 3.0, "fit_samples": 256, "precision": "32-true"},
    "small": {"astrofm": _architecture(64, 2, 128, 4, 4.0, 128), "objective": OBJECTIVE,
              "optimizer": {"lr": 1e-3, "warmup_steps": 100, "min_lr_ratio": 0.05}, "batch_size": 128,
              "max_steps": 900, "minutes": 14.0, "fit_samples": 2048, "precision": "bf16-mixed"},
}


def recipe(preset: str, config: Path | None = None) -> dict[str, Any]:
    """The training recipe of a preset, or the model, objective, optimizer and batch size of a YAML config."""
    out = copy.deepcopy(RECIPES[preset])
    if config is None:
        return out
    import yaml

    try:
        values = yaml.safe_load(Path(config).read_text())
        init = values["model"]["init_args"]
        out.update(astrofm=init["astrofm"], objective=init.get("objective") or out["objective"],
                   optimizer=init.get("optimizer") or out["optimizer"])
    except (OSError, KeyError, TypeError, yaml.YAMLError) as error:
        raise ConfigError(f"--config {config}: not a readable LightningCLI config with model.init_args.astrofm "
                          f"({error})") from error
    out["batch_size"] = values.get("data", {}).get("batch_size", out["batch_size"])
    out["max_steps"] = values.get("trainer", {}).get("max_steps", out["max_steps"])
    out["precision"] = values.get("trainer", {}).get("precision", out["precision"])
    return out


def flush_denormals() -> None:
    """Flush denormal floats to zero (they slow small CPU models down 10-40x).

    Importing some libraries (seen with lightning/torchmetrics, matplotlib, scikit-learn) turns the
    flag off again, so the demo sets it after its imports, right before heavy tensor work.
    """
    torch.set_flush_denormal(True)


class _LossHistory:
    """Train losses of a Lightning run (first and last few), for the demo's report; saved in its checkpoints,
    so a resumed run reports the losses from its first step."""

    def __init__(self) -> None:
        import lightning as L

        history = self

        class Callback(L.Callback):
            def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                                   batch_idx: int) -> None:
                loss = outputs["loss"] if isinstance(outputs, dict) else outputs
                history.losses.append(float(loss.detach()))

            def state_dict(self) -> dict[str, Any]:
                return {"losses": list(history.losses)}

            def load_state_dict(self, state_dict: dict[str, Any]) -> None:
                history.losses[:] = [float(v) for v in state_dict.get("losses", [])]

        self.losses: list[float] = []
        self.callback = Callback()

    def summary(self) -> dict[str, float]:
        if not self.losses:
            return {"first_loss": float("nan"), "final_loss": float("nan")}
        return {"first_loss": float(np.mean(self.losses[:5])), "final_loss": float(np.mean(self.losses[-10:]))}


def fit(module: Any, *, max_steps: int, seconds: float, precision: str = "32-true", checkpoints: Path | None = None,
        progress: bool = True, datamodule: Any = None, train_loader: Any = None) -> dict[str, Any]:
    """Train a ``PretrainModule`` with Lightning for ``max_steps`` or ``seconds`` (gradient clipping at 1), on the
    CPU; a bf16 ``precision`` runs as ``32-true`` where the CPU has no native bf16 (:func:`fit_precision`).

    With ``checkpoints`` a ``last.ckpt`` is written every few steps and a killed run resumes from it
    (the elapsed time budget included). Returns the steps, the training seconds (Lightning's timer: those of
    a resumed run's earlier part up to its checkpoint included) and the first and final losses.
    """
    from datetime import timedelta

    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint, Timer

    history = _LossHistory()
    callbacks: list[Any] = [history.callback]
    if checkpoints is not None:
        callbacks.append(ModelCheckpoint(dirpath=checkpoints, every_n_train_steps=max(10, max_steps // 20),
                                         save_last=True, save_top_k=0))
    lightning_log = logging.getLogger("lightning.pytorch")  # the demo reports its own steps
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)
    try:
        trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=max_steps,
                            max_time=timedelta(seconds=seconds), precision=fit_precision(precision, "cpu"),
                            gradient_clip_val=1.0,
                            logger=False, callbacks=callbacks, enable_checkpointing=checkpoints is not None,
                            enable_progress_bar=progress, enable_model_summary=False, limit_val_batches=0,
                            num_sanity_val_steps=0, default_root_dir=checkpoints)
        last = checkpoints / "last.ckpt" if checkpoints is not None else None
        flush_denormals()
        trainer.fit(module, train_dataloaders=train_loader, datamodule=datamodule,
                    ckpt_path=last if last is not None and last.exists() else None)
    finally:
        lightning_log.setLevel(level)
    module.eval()
    timer = next(c for c in trainer.callbacks if isinstance(c, Timer))  # Lightning adds it for max_time
    return {"steps": int(trainer.global_step), "seconds": round(timer.time_elapsed("train"), 1),
            **history.summary()}


def train_model(universe: Path, folder: Path, checkpoints: Path, *, preset: str, config: Path | None,
                minutes: float | None, seed: int, progress: bool) -> dict[str, Any]:
    """Train the all-modalities model from scratch; save it to ``folder``. Returns the training figures."""
    from astrofm.hub.pretrained import ModelCard
    from astrofm.training import PretrainModule

    spec = recipe(preset, config)
    budget = float(minutes if minutes is not None else spec["minutes"])
    modalities = list(spec["astrofm"]["modalities"])
    data = D.data_module(universe, modalities, batch_size=spec["batch_size"], fit_samples=spec["fit_samples"],
                         buffer_size=1024, seed=seed, cache=True, how=spec.get("how", "inner"))
    torch.manual_seed(seed)
    module = PretrainModule(copy.deepcopy(spec["astrofm"]), objective=copy.deepcopy(spec["objective"]),
                            optimizer=spec["optimizer"])
    model = module.model
    model.fit_transforms(data.fit_samples())
    log.info("training the all-modalities model (%d steps or %.1f min at most)", spec["max_steps"], budget)
    info = fit(module, max_steps=spec["max_steps"], seconds=60 * budget, precision=spec["precision"],
               checkpoints=checkpoints, progress=progress, datamodule=data)
    card = ModelCard(name=f"astrofm-demo-{preset}", description="All-modalities contrastive model trained by "
                     "`astrofm demo --train`.", training_data=f"simulated universe ({preset}), train split",
                     objective=str(spec["objective"].get("name")), metrics={"final_train_loss": info["final_loss"]},
                     command=f"astrofm demo --preset {preset} --train")
    model.save_pretrained(folder, card=card)
    return {**info, "parameters": model.num_parameters()}


#: The AR demo's model: spectrum windows (32 pixels of the 4-Å grid) through a small decoder.
AR_MODEL: dict[str, Any] = {
    "model_type": "ar", "dim": 64, "depth": 2, "heads": 4,
    "modalities": {"spectrum": {"tokenizer": "spectrum_windows", "config": {"window": 32, "position": "wavelength"},
                                "transforms": [{"type": "MaskBadPixels"},
                                               {"type": "Resample", "start": 3600.0, "stop": 9824.0, "step": 4.0},
                                               {"type": "IvarNormalize"}]}},
}


def train_ar(universe: Path, *, steps: int, seconds: float, seed: int, progress: bool,
             n_spectra: int = 1024) -> tuple[Any, Any, dict]:
    """A tiny AR model of galaxy spectra trained for ``steps`` or ``seconds``; (model, data module, info).

    It trains on ``n_spectra`` train spectra spread over the split, preprocessed once and kept in memory
    (its transforms are deterministic), in shuffled batches of 32.
    """
    from torch.utils.data import DataLoader

    from astrofm.data.batch import collate
    from astrofm.training import PretrainModule

    torch.manual_seed(seed)
    module = PretrainModule(copy.deepcopy(AR_MODEL), objective={"name": "autoregressive"},
                            optimizer={"lr": 2e-3, "warmup_steps": 20, "min_lr_ratio": 0.1})
    model = module.model
    data = D.data_module(universe, ["spectrum"], populations=["galaxies"], batch_size=32, fit_samples=n_spectra,
                         seed=seed)
    samples = data.fit_samples()
    model.fit_transforms(samples[:256])
    prepared = [model.transform(sample) for sample in samples]
    loader = DataLoader(prepared, batch_size=32, shuffle=True, drop_last=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(seed))
    info = fit(module, max_steps=steps, seconds=seconds, progress=progress, train_loader=loader)
    mean = np.mean([p["spectrum"]["flux"] for p in prepared], axis=0)
    return model, data, {**info, "parameters": model.num_parameters(), "train_spectra": len(prepared),
                         "mean_flux": mean}
