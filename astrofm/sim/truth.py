"""The truth catalog: every latent of every simulated object, and (apart) the anomaly labels.

Files under ``<root>/truth/`` (flat HDF5, one column per dataset, axis 0 = object):

- ``galaxies.hdf5``: ``truth_id``, true ``ra``/``dec`` [deg], ``healpix``, the
  object's id in each survey (``legacysurvey_object_id`` S16,
  ``desi_object_id`` int64, −1 without a spectrum), ``has_spectrum``, ``split``,
  and the latents: ``z``, ``log_mstar``, ``log_ssfr``, ``sfr`` [M☉/yr],
  ``quiescent``, ``morphology`` (E/S0/Sp/Irr) and ``morphology_index``,
  ``bulge_fraction`` (mass), ``bt_r`` (r-band light), ``sersic_n``,
  ``disk_r_kpc``/``bulge_r_kpc``/``disk_r_arcsec``/``bulge_r_arcsec``,
  ``r_half_arcsec`` (whole galaxy, r band), ``inclination_deg``, ``disk_q``,
  ``bulge_q``, ``position_angle_deg``, ``dust_av``, ``f_young``,
  ``sigma_gas_kms``, ``d_lum_mpc``, ``ebv``, true fluxes ``flux_{g,r,i,z,w1..w4}``
  [nanomaggies] and ``mag_{g,r,i,z}`` [AB], the bulge and disk light fractions
  in a DESI fibre ``fibre_fraction_bulge``/``fibre_fraction_disk``, and
  ``desi_snr`` (median S/N per pixel of the spectrum) and ``desi_delta_chi2`` (the expected
  Δχ² of its redshift fit to the next-best redshift, :func:`astrofm.sim.desi.feature_chi2`), NaN without one.
- ``stars.hdf5``: ``truth_id``, ``ra``/``dec``, ``healpix``, ``asassn_object_id``,
  ``gaia_object_id``, ``lamost_object_id`` (−1 without a spectrum),
  ``has_lamost``, ``split``, ``class`` (AstroM3 name; empty for anomaly hosts
  outside the ten classes) and ``class_index`` (0–9 in
  :data:`astrofm.sim.stars.CLASSES` order, −1 for none), ``is_periodic``,
  ``period`` [d], ``amplitude_v`` [mag], ``teff`` [K], ``logg``, ``feh``,
  ``abs_mag_v``, ``mean_vmag``, ``distance_pc``, ``av``, ``ebv_total``, ``l``,
  ``b`` [deg], ``pmra``/``pmdec`` [mas/yr], ``rv_kms``, ``vsini_kms``, ``dust``, ``t0`` [MJD].
- ``anomalies.hdf5``: ``truth_id``, ``population`` (galaxies/stars),
  ``is_anomaly``, ``anomaly_type`` and ``anomaly_detail`` for every object —
  kept out of the label tables so that no anomaly becomes a training target.

``truth_id`` is unique over both populations (galaxies first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from astrofm.errors import DataFormatError
from astrofm.sim.tables import Table
from astrofm.utils.atomic import atomic_path

TRUTH_DIR = "truth"
POPULATIONS = ("galaxies", "stars")
ANOMALY_COLUMNS = ("anomaly_type", "anomaly_detail")


def write_table(path: str | Path, columns: Mapping[str, np.ndarray]) -> Path:
    """Write flat columns to an HDF5 file atomically (text as UTF-8 bytes)."""
    path = Path(path)
    with atomic_path(path, suffix=".hdf5.tmp") as tmp, h5py.File(tmp, "w") as handle:
        for name, values in columns.items():
            array = np.asarray(values)
            if array.dtype.kind == "U":
                array = np.char.encode(array, "utf-8")
            handle.create_dataset(name, data=array)
    return path


def read_table(path: str | Path, columns: Sequence[str] | None = None) -> Table:
    """All (or the given) columns of a flat HDF5 table."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "truth table not found (is the simulation complete?)")
    with h5py.File(path, "r") as handle:
        names = list(handle) if columns is None else list(columns)
        missing = [c for c in names if c not in handle]
        if missing:
            raise DataFormatError(path, "column not in truth table", field=missing[0], expected=sorted(handle),
                                  found=missing)
        return {name: handle[name][()] for name in names}


def part_path(root: str | Path, population: str, pixel: int) -> Path:
    """Where one work unit's truth rows go; its existence marks the unit as done."""
    return Path(root) / TRUTH_DIR / "parts" / f"{population}-{pixel:05d}.hdf5"


def merge_parts(root: str | Path, parts: Mapping[str, Sequence[Path]]) -> dict[str, Path]:
    """Concatenate the unit parts (in the given order) into the truth tables; returns their paths."""
    root = Path(root)
    anomaly_tables = []
    written = {}
    for population in POPULATIONS:
        tables = [read_table(p) for p in parts.get(population, [])]
        if not tables:
            continue
        merged = {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}
        anomaly_tables.append({
            "truth_id": merged["truth_id"],
            "population": np.full(len(merged["truth_id"]), population.encode(), dtype="S8"),
            "is_anomaly": merged["anomaly_type"] != b"",
            "anomaly_type": merged["anomaly_type"],
            "anomaly_detail": merged["anomaly_detail"],
        })
        labels = {k: v for k, v in merged.items() if k not in ANOMALY_COLUMNS}
        written[population] = write_table(root / TRUTH_DIR / f"{population}.hdf5", labels)
    anomalies = {k: np.concatenate([t[k] for t in anomaly_tables]) for k in anomaly_tables[0]}
    written["anomalies"] = write_table(root / TRUTH_DIR / "anomalies.hdf5", anomalies)
    return written


def load_truth(root: str | Path, population: str = "galaxies", columns: Sequence[str] | None = None) -> Table:
    """The truth table (labels and latents, no anomaly flags) of ``galaxies`` or ``stars``."""
    if population not in POPULATIONS:
        raise DataFormatError(root, "unknown population", field="population", expected=POPULATIONS, found=population)
    return read_table(Path(root) / TRUTH_DIR / f"{population}.hdf5", columns)


def load_anomalies(root: str | Path) -> Table:
    """``truth_id``, ``population``, ``is_anomaly``, ``anomaly_type``, ``anomaly_detail`` of every object."""
    return read_table(Path(root) / TRUTH_DIR / "anomalies.hdf5")
