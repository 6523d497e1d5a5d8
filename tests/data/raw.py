"""Shards written with plain h5py, as MMU's own writers do: no astrofm validation, casting or byte-order change."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from astrofm.data.layout import healpix_index


def write_raw_shard(path: Path, columns: dict[str, np.ndarray], *, ids: np.ndarray, ra: float = 10.0,
                    dec: float = 0.0) -> Path:
    """One shard of objects ``ids``, all at (``ra``, ``dec``) [deg], with ``columns`` stored as given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(ids)
    ras, decs = np.full(n, ra), np.full(n, dec)
    with h5py.File(path, "w") as f:
        f["object_id"], f["ra"], f["dec"], f["healpix"] = ids, ras, decs, healpix_index(ras, decs)
        for name, values in columns.items():
            f[name] = values
    return path
