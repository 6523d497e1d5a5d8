"""Shared pieces of the science benchmarks: data, training within a time budget, embeddings, labels."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml

from astrofm.model import AstroFM
from astrofm.training import AstroFMDataModule
from astrofm.utils.precision import fit_precision, inference_autocast

log = logging.getLogger("benchmarks.science")

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs" / "science"
#: Where the ``small`` universe is simulated (once) and where runs write their logs and models.
DATA_ROOT = REPO / "data" / "sim" / "small"
PRESET = "small"
RUNS = REPO / "runs" / "science"
#: Lightning accelerator that :func:`fit` trains on ("cpu", "gpu", "auto"); embeddings are computed on CPU.
ACCELERATOR = "cpu"


def redshift_context(modality: str, figure: str) -> tuple[str, str]:
    """(results id, target text) of a figure that puts S1 (``image``) or S2 (``spectrum``) in context:
    ``science.s1_image_<figure>`` and "context for S1 (>= 0.90)", or the S2 pair."""
    science, target = {"image": ("s1", "S1 (>= 0.90)"), "spectrum": ("s2", "S2 (>= 0.99)")}[modality]
    return f"science.{science}_{modality}_{figure}", f"context for {target}"


def setup(threads: int) -> None:
    """Logging, torch threads and denormal flushing for a benchmark process."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    log.info("torch threads %d, load average %s", threads, os.getloadavg())


def load_config(name: str) -> dict[str, Any]:
    """A LightningCLI YAML of ``configs/science`` as a dict."""
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


def use_root(root: str | Path | None, preset: str = "small") -> None:
    """Run on another simulated universe (e.g. ``tiny`` for a quick check of the pipeline)."""
    global DATA_ROOT, PRESET
    if root is not None:
        DATA_ROOT, PRESET = Path(root), preset


def use_accelerator(name: str) -> None:
    """Train on another Lightning accelerator ("gpu", "auto"); the trained module comes back on CPU."""
    global ACCELERATOR
    ACCELERATOR = name


def device_name() -> str:
    """What :func:`fit` trains on, in words: the GPU's name, or "cpu"."""
    return torch.cuda.get_device_name() if ACCELERATOR != "cpu" and torch.cuda.is_available() else "cpu"


def data_module(config: dict[str, Any], **overrides: Any) -> AstroFMDataModule:
    """The data module of a config's ``data`` section (simulating the universe if needed)."""
    data = AstroFMDataModule(**{**config["data"], "root": str(DATA_ROOT), "simulate": PRESET, **overrides})
    data.prepare_data()
    data.setup()
    return data


def fit(module: L.LightningModule, data: AstroFMDataModule, *, name: str, max_steps: int, max_minutes: float,
        precision: str = "bf16-mixed", seed: int = 0, val_every: int | None = None, monitor: str = "val/acc",
        mode: str = "max") -> dict[str, Any]:
    """Train with Lightning for ``max_steps`` or ``max_minutes``, whichever comes first; CSV logs in runs/.

    A bf16 ``precision`` trains in 32-true on a CPU without native bf16. With ``val_every``, validate every
    that many steps and end with the weights that scored best on ``monitor`` (``mode`` "max" or "min").
    """
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from astrofm.training import StreamResume

    L.seed_everything(seed, workers=True)
    callbacks: list[L.Callback] = [StreamResume()]
    best = None
    if val_every:
        best = ModelCheckpoint(dirpath=RUNS / name / "best", monitor=monitor, mode=mode, save_top_k=1,
                               save_weights_only=True)
        callbacks.append(best)
    trainer = L.Trainer(max_steps=max_steps, max_time={"minutes": max_minutes}, accelerator=ACCELERATOR,
                        precision=fit_precision(precision, ACCELERATOR), gradient_clip_val=1.0,
                        logger=CSVLogger(RUNS, name=name),
                        enable_checkpointing=best is not None, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=None if val_every else 0,
                        val_check_interval=val_every, check_val_every_n_epoch=None if val_every else 1,
                        num_sanity_val_steps=0, log_every_n_steps=50, callbacks=callbacks)
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    wall = time.perf_counter() - start
    module.cpu()
    info: dict[str, Any] = {"steps": int(trainer.global_step), "wall_s": round(wall, 1), "device": device_name(),
                            "final_train_loss": float(trainer.callback_metrics.get("train/loss", float("nan")))}
    if best is not None and best.best_model_path:
        state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
        info["best_" + monitor.replace("/", "_")] = float(best.best_model_score)
    log.info("%s: %d steps in %.0f s", name, trainer.global_step, wall)
    return info


@torch.no_grad()
def embed(model: AstroFM, data: AstroFMDataModule, split: str, modalities: Sequence[str] | None = None,
          batch_size: int = 256, pooled: dict[str, np.ndarray] | None = None
          ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Object ids and (N, D) embeddings (NaN rows where a modality is absent) of one split, in order.

    With a ``pooled`` dict, it also receives each modality's pooled encoder output (before the projection
    head), NaN rows where absent: the backbone features, from the same pass.
    """
    ids: list[str] = []
    parts: dict[str, list[np.ndarray]] = {}
    features: dict[str, list[np.ndarray]] = {}
    model.eval()
    for batch in data.loader(split, batch_size=batch_size, transform=model.transform):
        with inference_autocast("cpu"):
            embedded = model(batch, modalities)
        ids += batch.object_id
        for name in modalities or model.modalities:
            if name in embedded:
                z = embedded[name].scatter().float().numpy()
                presence = embedded[name].presence.numpy()
                h = embedded[name].output.pooled.float().numpy()
            else:
                z = np.full((len(batch), model.embed_dim), np.nan, np.float32)
                presence, h = np.zeros(len(batch), bool), None
            parts.setdefault(name, []).append(z)
            if pooled is not None:
                width = model.encoder(name).out_dim
                full = np.full((len(batch), width), np.nan, np.float32)
                if h is not None:
                    full[presence] = h
                features.setdefault(name, []).append(full)
    if pooled is not None:
        pooled.update({k: np.concatenate(v) for k, v in features.items()})
    return np.asarray(ids), {k: np.concatenate(v) for k, v in parts.items()}


def truth_labels(population: str, id_column: str, column: str, *, labelled_only: bool = True) -> dict[str, Any]:
    """object id (as in ``id_column``'s survey) -> truth ``column``; anomalies left out if ``labelled_only``."""
    from astrofm.sim import load_splits, load_truth

    table = load_truth(DATA_ROOT, population, [id_column, column, "truth_id"])
    keep = np.ones(len(table["truth_id"]), bool)
    if labelled_only:
        manifest = load_splits(DATA_ROOT)["populations"][population]
        labelled = np.concatenate([np.asarray(manifest[s]["labelled"]) for s in ("train", "val", "test")])
        keep = np.isin(table["truth_id"], labelled)
    keys = table[id_column][keep]
    keys = np.char.decode(keys, "utf-8") if keys.dtype.kind == "S" else keys.astype(str)
    values = table[column][keep]
    values = np.char.decode(values, "utf-8") if values.dtype.kind == "S" else values
    return dict(zip(keys.tolist(), values.tolist()))


def redshift_labels(*, secure_only: bool = True) -> dict[str, float]:
    """Legacy-Survey-like object id -> true redshift of the normal galaxies; with ``secure_only``, of those
    with a secure DESI-like redshift (``ZWARN`` == 0) only: the galaxies a survey has redshift labels for,
    as in AstroCLIP's evaluation (S1, S2)."""
    labels = truth_labels("galaxies", "legacysurvey_object_id", "z")
    if not secure_only:
        return labels
    from astrofm.sim.validation import secure_redshift

    spectra = truth_labels("galaxies", "legacysurvey_object_id", "desi_object_id")  # -1: no spectrum
    secure = secure_redshift(DATA_ROOT, np.array([spectra[k] for k in labels]))
    return {k: z for (k, z), keep in zip(labels.items(), secure) if keep}


def aligned(ids: np.ndarray, labels: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(mask of ids that have a label, their labels)."""
    have = np.array([i in labels for i in ids])
    return have, np.array([labels[i] for i in ids[have]])


def subset_manifest(path: Path, data: AstroFMDataModule, train_ids: Sequence[str], val_limit: int | None = None
                    ) -> Path:
    """A split manifest with ``train`` restricted to ``train_ids`` (test unchanged; val cut to its first
    ``val_limit`` objects if given: it only picks the checkpoint)."""
    manifest = {"train": list(map(str, train_ids))}
    for split in ("val", "test"):
        manifest[split] = [str(i) for i in data.splits[split].object_ids]
    manifest["val"] = manifest["val"][:val_limit]
    path = path.resolve()  # the data module reads a relative manifest from its data root
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
    return path


def work_file(relative: str, trial: bool) -> Path:
    """``runs/science/<relative>``, or ``runs/science/trials/<relative>`` for a trial (``--no-record``), so that a
    trial never overwrites the work file of the run whose figures are recorded."""
    return RUNS / "trials" / relative if trial else RUNS / relative


def save_json(path: Path, values: dict[str, Any]) -> None:
    from astrofm.utils.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(values, indent=1, default=float))


def update_card(folder: str | Path, metrics: dict[str, float]) -> None:
    """Add ``metrics`` to the model card of a pretrained folder (re-saved with the same weights)."""
    from astrofm.hub.pretrained import card_of, load_pretrained, save_pretrained

    folder = Path(folder)
    card = card_of(folder)
    card.metrics = {**card.metrics, **{k: round(float(v), 4) for k, v in metrics.items()}}
    save_pretrained(load_pretrained(folder), folder, card=card)
    log.info("model card of %s: metrics %s", folder, card.metrics)
