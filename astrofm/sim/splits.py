"""The train/val/test split manifest, ``<root>/splits.json``.

Layout::

    {"format": "astrofm-sim-splits/1", "seed": 0,
     "fractions": {"train": 0.8, "val": 0.1, "test": 0.1},
     "populations": {
        "galaxies": {"surveys": ["legacysurvey", "desi"],
                     "train": {"truth_id": [...], "labelled": [...],
                               "legacysurvey": ["1800p050-12", ...], "desi": [39627000000000012, ...]},
                     "val": {...}, "test": {...}},
        "stars": {"surveys": ["asassn", "gaia", "lamost"], ...}}}

Each object belongs to one split (drawn per object from the seed). ``truth_id``
lists every object of the split; ``labelled`` only the normal ones, whose
labels may be used as targets — anomalies are never in it. Per survey, the
split's object ids in that survey (as written in its shards; LS ids decoded
to text) join to the shards by ``object_id``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.errors import DataFormatError
from astrofm.utils.atomic import atomic_write_text

SPLITS_FILE = "splits.json"
SPLIT_NAMES = ("train", "val", "test")
FORMAT = "astrofm-sim-splits/1"
#: Population -> (survey, truth column holding the object's id in it, missing-id value).
SURVEY_IDS = {
    "galaxies": (("legacysurvey", "legacysurvey_object_id", None), ("desi", "desi_object_id", -1)),
    "stars": (("asassn", "asassn_object_id", None), ("gaia", "gaia_object_id", None),
              ("lamost", "lamost_object_id", -1)),
}


def assign(rng: np.random.Generator, n: int, fractions: tuple[float, float, float]) -> np.ndarray:
    """Split name (S5) of ``n`` objects drawn with the given fractions."""
    edges = np.cumsum(fractions)
    index = np.searchsorted(edges, rng.random(n), side="right").clip(0, 2)
    return np.array([s.encode() for s in SPLIT_NAMES], dtype="S5")[index]


def _ids(values: np.ndarray) -> list[Any]:
    if values.dtype.kind == "S":
        return [v.decode("utf-8") for v in values]
    return [int(v) for v in values]


def build(truth: dict[str, dict[str, np.ndarray]], anomalies: dict[str, np.ndarray], seed: int,
          fractions: tuple[float, float, float]) -> dict[str, Any]:
    """The manifest from the truth tables (with their ``split`` column) and the anomaly table."""
    anomalous = set(anomalies["truth_id"][anomalies["is_anomaly"]].tolist())
    populations: dict[str, Any] = {}
    for population, table in truth.items():
        entry: dict[str, Any] = {"surveys": [s for s, _, _ in SURVEY_IDS[population]]}
        for split in SPLIT_NAMES:
            rows = table["split"] == split.encode()
            ids = table["truth_id"][rows]
            part: dict[str, Any] = {"truth_id": ids.tolist(),
                                    "labelled": [int(i) for i in ids if int(i) not in anomalous]}
            for survey, column, missing in SURVEY_IDS[population]:
                values = table[column][rows]
                part[survey] = _ids(values if missing is None else values[values != missing])
            entry[split] = part
        populations[population] = entry
    return {"format": FORMAT, "seed": int(seed), "fractions": dict(zip(SPLIT_NAMES, map(float, fractions))),
            "populations": populations}


def write(root: str | Path, manifest: dict[str, Any]) -> Path:
    """Write the manifest atomically; returns its path."""
    path = Path(root) / SPLITS_FILE
    atomic_write_text(path, json.dumps(manifest))
    return path


def load_splits(root: str | Path) -> dict[str, Any]:
    """The split manifest of a simulated universe (see the module docstring for its layout)."""
    path = Path(root) / SPLITS_FILE
    if not path.exists():
        raise DataFormatError(path, "split manifest not found (is the simulation complete?)")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise DataFormatError(path, "unknown split manifest format", expected=FORMAT, found=manifest.get("format"))
    return manifest
