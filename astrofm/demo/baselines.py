"""Baselines measured in the same run as the model: random init, PCA of the inputs, colours only.

One streaming pass over a subset of objects gives both model-free views of them:

- the embeddings of a randomly initialized model of the same architecture (and the same fitted
  transforms, so the same preprocessed inputs);
- the preprocessed inputs themselves, flattened per modality (images 2×2-binned), for PCA.

The colours-only baseline needs no pass: the colours come from the survey catalogs
(:class:`astrofm.demo.data.Population`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astrofm.demo import data as D

log = logging.getLogger(__name__)

#: Points kept of each light curve for its flattened input (time order, zero padded).
LIGHTCURVE_POINTS = 64
#: Components of the PCA baselines.
PCA_COMPONENTS = 32


def _flat(name: str, batch: Any) -> np.ndarray:
    """(P, F) float32 of one modality's preprocessed values (P = objects that have it)."""
    mb = batch.modalities[name]
    if name == "image":
        flux = mb.data["flux"].float()
        flux = torch.nn.functional.avg_pool2d(flux, 2)
        return flux.reshape(len(flux), -1).numpy()
    if name == "spectrum":
        flux = mb.data["flux"].float().clone()
        flux[mb.data["mask"].bool()] = 0.0  # bad pixels (True = bad)
        if mb.mask is not None:
            flux[~mb.mask.bool()] = 0.0  # padding
        return flux.numpy()
    if name == "lightcurve":
        flux = mb.data["flux"].float().clone()
        flux[~mb.mask.bool()] = 0.0
        out = np.zeros((len(flux), LIGHTCURVE_POINTS), np.float32)
        n = min(LIGHTCURVE_POINTS, flux.shape[1])
        out[:, :n] = flux[:, :n].numpy()
        return out
    if name == "tabular":
        return mb.data["values"].float().numpy()
    raise KeyError(name)


def subset_views(model: Any, universe: Path, population: str, object_ids: Sequence[str], *, seed: int,
                 progress: bool = True) -> dict[str, Any]:
    """Random-init embeddings and flattened inputs of ``object_ids`` (one population), in their order.

    Returns ``{"random": {modality: (N, D)}, "inputs": {modality: (N, F)}}`` with NaN rows where an
    object lacks a modality.
    """
    from tqdm.auto import tqdm

    from astrofm.data.streaming import StreamingDataset, StreamingLoader
    from astrofm.demo.training import flush_denormals
    from astrofm.model import AstroFM
    from astrofm.training import SubsetSource
    from astrofm.utils.precision import inference_autocast

    torch.manual_seed(seed)
    random_model = AstroFM.from_config(model.config.to_dict()).eval()
    data = D.data_module(universe, model.modalities, populations=[population])
    subset = SubsetSource(data.open_source(), list(object_ids))
    stream = StreamingDataset(subset, batch_size=128, shuffle=False, block_size=256, transform=model.transform,
                              augment=False, seed=0)
    wanted = {str(oid): i for i, oid in enumerate(object_ids)}
    flush_denormals()
    random: dict[str, np.ndarray] = {}
    inputs: dict[str, np.ndarray] = {}
    with tqdm(total=len(subset), desc=f"baselines ({population})", unit="obj", disable=not progress) as bar:
        for batch in StreamingLoader(stream, num_workers=0):
            rows = np.array([wanted[str(oid)] for oid in batch.object_id])
            with inference_autocast("cpu"):  # as the model's embeddings (step 3)
                vectors = random_model.embed(batch)
            for name, mb in batch.modalities.items():
                present = mb.presence.numpy()
                z = vectors[name].float().numpy()[present]
                flat = _flat(name, batch)
                if name not in random:
                    random[name] = np.full((len(object_ids), z.shape[1]), np.nan, np.float32)
                    inputs[name] = np.full((len(object_ids), flat.shape[1]), np.nan, np.float32)
                random[name][rows[present]] = z
                width = min(flat.shape[1], inputs[name].shape[1])
                inputs[name][rows[present], :width] = flat[:, :width]
            bar.update(len(batch))
    return {"random": random, "inputs": inputs}


def pca_features(train: np.ndarray, test: np.ndarray, *, seed: int, components: int = PCA_COMPONENTS
                 ) -> tuple[np.ndarray, np.ndarray]:
    """PCA (fitted on the train rows) of standardized inputs."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train)
    n = max(1, min(components, train.shape[0] - 1, train.shape[1]))
    pca = PCA(n_components=n, random_state=seed).fit(scaler.transform(train))
    return pca.transform(scaler.transform(train)), pca.transform(scaler.transform(test))
