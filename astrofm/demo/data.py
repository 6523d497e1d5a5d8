"""The demo's data: which simulated datasets feed which modality, and the labels of every object.

The sources mirror ``configs/all-modalities*.yaml``: galaxies are Legacy-Survey images cross-matched
(outer) with DESI spectra, stars are ASAS-SN light curves cross-matched with Gaia metadata (the
``tabular`` modality) and LAMOST spectra. An embedding-store id is the id of the first dataset of its
population that the object is in (the Legacy Survey id of a galaxy, the ASAS-SN id of a star).

:class:`Population` holds the truth of one population aligned to those ids: split, labels (redshift,
stellar mass, star class), anomaly flags, and the photometric colours of the colours-only baseline,
read from the survey catalogs (not from the truth).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.errors import ConfigError
from astrofm.sim.validation import read_dataset

log = logging.getLogger(__name__)

#: Gaia/2MASS/WISE-like catalog columns of the ``tabular`` modality (as in configs/all-modalities*.yaml).
TABULAR_COLUMNS = ["phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag", "bp_rp", "parallax", "parallax_error",
                   "pmra", "pmdec", "ruwe", "j_mag", "h_mag", "k_mag", "w1_mag", "w2_mag", "w3_mag", "w4_mag", "l",
                   "b", "ebv"]

#: Population -> its datasets in match order: (name, folder, modality it gives or "tabular").
DATASETS: dict[str, list[tuple[str, str, str]]] = {
    "galaxies": [("legacysurvey", "legacysurvey/dr10_south_21", "image"), ("desi", "desi/dr1_main", "spectrum")],
    "stars": [("asassn", "asassn/variables", "lightcurve"), ("gaia", "gaia/dr3", "tabular"),
              ("lamost", "lamost/dr8", "spectrum")],
}


def source_specs(modalities: tuple[str, ...] | list[str], how: str = "outer") -> dict[str, dict[str, Any]]:
    """Population -> an ``AstroFMDataModule`` source spec of the datasets a model with ``modalities`` reads
    (``how="inner"``: only the objects that every dataset has, as for contrastive training)."""
    specs = {}
    for population, datasets in DATASETS.items():
        chosen = {}
        for name, folder, modality in datasets:
            if modality not in modalities:
                continue
            if modality == "tabular":
                chosen[name] = {"path": folder, "modalities": [], "tabular_columns": list(TABULAR_COLUMNS)}
            else:
                chosen[name] = {"path": folder, "modalities": [modality]}
        if chosen:
            specs[population] = {"datasets": chosen, "how": how}
    if not specs:
        raise ConfigError(f"the model's modalities {list(modalities)} match none of the simulated datasets "
                          "(image, spectrum, lightcurve, tabular)")
    return specs


def data_module(universe: Path, modalities: tuple[str, ...] | list[str], *, populations: list[str] | None = None,
                batch_size: int = 256, how: str = "outer", **options: Any) -> Any:
    """An ``AstroFMDataModule`` over the demo's sources (all populations, or the given ones)."""
    from astrofm.training import AstroFMDataModule

    specs = source_specs(modalities, how)
    chosen = [specs[p] for p in (populations or list(specs)) if p in specs]
    if not chosen:
        raise ConfigError(f"the model reads none of the populations {populations}")
    return AstroFMDataModule(root=str(universe), sources=chosen, split="splits.json", batch_size=batch_size,
                             **options)


def _text(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "S":
        return np.char.decode(values, "utf-8")
    return values.astype(str)


def read_catalog(folder: Path, columns: list[str]) -> dict[str, np.ndarray]:
    """``object_id`` (as text; Gaia's ``source_id``) and 1-D catalog ``columns`` of every shard of an MMU dataset
    folder."""
    out = read_dataset(folder, ["object_id", *columns])
    out["object_id"] = _text(out["object_id"])
    return out


def _magnitude(flux: np.ndarray) -> np.ndarray:
    """AB magnitude of a flux in nanomaggies (NaN where not positive)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, 22.5 - 2.5 * np.log10(np.where(flux > 0, flux, 1.0)), np.nan)


@dataclass
class Population:
    """One population's truth, one row per object, keyed by the object's embedding-store id."""

    name: str
    ids: np.ndarray  # str
    truth_id: np.ndarray
    split: np.ndarray  # "train" / "val" / "test"
    is_anomaly: np.ndarray
    anomaly_type: np.ndarray  # str, "" for normal objects
    labels: dict[str, np.ndarray]
    colours: np.ndarray  # (N, C), NaN where a flux is missing
    colour_names: list[str]

    def rows(self, object_ids: Any) -> np.ndarray:
        """Row of each id (−1 where it is not in the population)."""
        index = {oid: i for i, oid in enumerate(self.ids.tolist())}
        return np.array([index.get(str(oid), -1) for oid in np.asarray(object_ids).tolist()], dtype=np.int64)

    def labelled(self, rows: np.ndarray) -> np.ndarray:
        """The rows of normal objects among ``rows`` (anomalies never serve as labels)."""
        return rows[~self.is_anomaly[rows]]


def load_population(universe: Path, population: str, modalities: tuple[str, ...] | list[str]) -> Population:
    """The truth of ``galaxies`` or ``stars`` aligned to the ids the demo's embedding store uses."""
    from astrofm.sim import load_anomalies, load_truth

    universe = Path(universe)
    present = [d for d in DATASETS[population] if d[2] in modalities]
    if not present:
        raise ConfigError(f"the model reads no dataset of the {population}")
    key = f"{present[0][0]}_object_id"
    truth = load_truth(universe, population)
    anomalies = load_anomalies(universe)
    flags = dict(zip(anomalies["truth_id"].tolist(), zip(anomalies["is_anomaly"].tolist(),
                                                         _text(anomalies["anomaly_type"]).tolist())))
    truth_id = truth["truth_id"]
    is_anomaly = np.array([flags[t][0] for t in truth_id.tolist()], bool)
    anomaly_type = np.array([flags[t][1] for t in truth_id.tolist()], dtype=str)
    if population == "galaxies":
        labels = {"z": truth["z"].astype(np.float64), "log_mstar": truth["log_mstar"].astype(np.float64)}
        catalog = read_catalog(universe / DATASETS["galaxies"][0][1],
                               ["FLUX_G", "FLUX_R", "FLUX_I", "FLUX_Z", "FLUX_W1", "FLUX_W2"])
        mags = [_magnitude(catalog[f"FLUX_{band}"].astype(np.float64)) for band in ("G", "R", "I", "Z", "W1", "W2")]
        names = ["g-r", "r-i", "i-z", "z-W1", "W1-W2"]
        colours = np.stack([mags[i] - mags[i + 1] for i in range(5)], axis=1)
        catalog_key = _text(truth["legacysurvey_object_id"])
    else:
        labels = {"class": _text(truth["class"])}
        catalog = read_catalog(universe / DATASETS["stars"][1][1],
                               ["phot_bp_mean_mag", "phot_g_mean_mag", "phot_rp_mean_mag", "j_mag", "h_mag", "k_mag",
                                "w1_mag", "w2_mag"])
        order = ["phot_bp_mean_mag", "phot_g_mean_mag", "phot_rp_mean_mag", "j_mag", "h_mag", "k_mag", "w1_mag",
                 "w2_mag"]
        mags = [catalog[c].astype(np.float64) for c in order]
        names = ["BP-G", "G-RP", "RP-J", "J-H", "H-K", "K-W1", "W1-W2"]
        colours = np.stack([mags[i] - mags[i + 1] for i in range(len(order) - 1)], axis=1)
        catalog_key = _text(truth["gaia_object_id"])
    index = {oid: i for i, oid in enumerate(catalog["object_id"].tolist())}
    rows = np.array([index.get(k, -1) for k in catalog_key.tolist()])
    colours = np.where((rows >= 0)[:, None], colours[np.maximum(rows, 0)], np.nan)
    return Population(population, _text(truth[key]), truth_id, _text(truth["split"]), is_anomaly, anomaly_type,
                      labels, colours, names)


#: Objects of each population that the demo embeds: a sample of the train split and of the test split
#: (all of them on the ``tiny`` preset; on ``small`` this keeps the demo within 10 minutes on 2 cores).
SAMPLE = {"train": 3000, "test": 2000}


def sample_rows(population: Population, seed: int) -> dict[str, np.ndarray]:
    """The rows of the demo's sample of a population: ``train`` and ``test`` (anomalies included)."""
    return {"train": pick(np.flatnonzero(population.split == "train"), SAMPLE["train"], seed),
            "test": pick(np.flatnonzero(population.split == "test"), SAMPLE["test"], seed + 1)}


def pick(rows: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most ``limit`` of ``rows``, drawn without replacement (sorted), reproducibly."""
    if len(rows) <= limit:
        return np.sort(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))
