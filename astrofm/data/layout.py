"""The MMU folder layout: ``<survey>/<subset>/healpix=<N>/001-of-001.hdf5``.

HEALPix indices are NESTED, nside 16, from ra/dec in degrees, as in every MMU
writer.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from astrofm.data.schema import HEALPIX_NSIDE

SHARD_SUFFIXES = (".hdf5", ".h5")
_HEALPIX_DIR = re.compile(r"^healpix=(\d+)$")


def healpix_index(ra_deg: np.ndarray, dec_deg: np.ndarray, nside: int = HEALPIX_NSIDE) -> np.ndarray:
    """NESTED HEALPix pixel of each (ra, dec) in degrees, as int64."""
    import astropy.units as u
    from astropy_healpix import HEALPix

    grid = HEALPix(nside=nside, order="nested")
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    return np.asarray(grid.lonlat_to_healpix(ra * u.deg, dec * u.deg), dtype=np.int64)


def shard_path(dataset_root: str | Path, healpix: int, index: int = 1, count: int = 1) -> Path:
    """Path of one shard inside a dataset folder (``<subset>`` level)."""
    return Path(dataset_root) / f"healpix={int(healpix)}" / f"{index:03d}-of-{count:03d}.hdf5"


def discover_shards(root: str | Path) -> list[Path]:
    """All HDF5 shards under ``root`` (a file, a subset folder or a survey folder), sorted.

    Hidden files (temporary files of an unfinished atomic write) are skipped.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    found = [
        p for p in root.rglob("*")
        if p.suffix in SHARD_SUFFIXES and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(found, key=_shard_sort_key)


def healpix_of_path(path: str | Path) -> int | None:
    """The healpix pixel named by a ``healpix=<N>`` folder in ``path``, if any."""
    for part in Path(path).parts:
        match = _HEALPIX_DIR.match(part)
        if match:
            return int(match.group(1))
    return None


def _shard_sort_key(path: Path) -> tuple[str, int, str]:
    pixel = healpix_of_path(path)
    return (str(path.parent.parent), -1 if pixel is None else pixel, path.name)
