"""Property test: every generated malformed shard gives a clear astrofm error (>= 500 shards).

Each example starts from a valid small shard and breaks it in one way. Opening
and fully validating it must raise ``DataFormatError`` naming the file: never
another exception, never a hang, never data returned as if valid.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astrofm.data.inspect import inspect_dataset
from astrofm.data.modalities import ARRAY_MODALITIES
from astrofm.data.schema import SCHEMAS, dtype_matches
from astrofm.errors import DataFormatError
from tests.helpers.synthetic import make_samples

MODALITY_FIELDS = ["image_array", "image_ivar", "image_mask", "image_psf_fwhm", "spectrum_flux", "spectrum_ivar",
                   "spectrum_lambda", "spectrum_mask", "lightcurve"]
REQUIRED = ["object_id", "image_array", "spectrum_flux", "spectrum_lambda", "lightcurve"]
FINITE_FLOATS = ["image_array", "image_ivar", "spectrum_flux", "spectrum_ivar", "spectrum_lambda", "lightcurve"]


def valid_columns(n: int, seed: int) -> dict[str, np.ndarray]:
    samples = make_samples(n, seed=seed, modalities=("image", "spectrum", "lightcurve"))
    cols = {"object_id": np.array([int(s["object_id"]) for s in samples]),
            "ra": np.array([s["ra"] for s in samples]), "dec": np.array([s["dec"] for s in samples])}
    for m in ("image", "spectrum", "lightcurve"):
        cols.update(ARRAY_MODALITIES[m].to_columns([s[m] for s in samples]))
    return cols


def write_raw(path: Path, cols: dict[str, np.ndarray]) -> None:
    with h5py.File(path, "w") as f:
        for k, v in cols.items():
            f.create_dataset(k, data=v)


mutation = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(REQUIRED)),
    st.tuples(st.just("dtype"), st.sampled_from([*MODALITY_FIELDS, "object_id"]),
              st.sampled_from(["float16", "int32", "complex64", "S3", "float64", "bool"])),
    st.tuples(st.just("shape"), st.sampled_from([*MODALITY_FIELDS, "ra", "dec"]), st.integers(0, 3)),
    st.tuples(st.just("nonfinite"), st.sampled_from(FINITE_FLOATS), st.sampled_from([np.nan, np.inf, -np.inf]),
              st.integers(0, 10**6)),
    st.tuples(st.just("negative_ivar"), st.sampled_from(["image_ivar", "spectrum_ivar"]), st.integers(0, 10**6)),
    st.tuples(st.just("coordinate"), st.sampled_from(["ra"]), st.sampled_from([-1.0, 361.0, np.nan, np.inf])),
    st.tuples(st.just("coordinate"), st.sampled_from(["dec"]), st.sampled_from([-91.0, 91.0, np.nan])),
    st.tuples(st.just("healpix"), st.integers(1, 3071)),
    st.tuples(st.just("duplicate_id"), st.integers(1, 10**6)),
    st.tuples(st.just("truncate"), st.floats(0.0, 0.97)),
    st.tuples(st.just("garbage"), st.binary(min_size=0, max_size=600)),
    st.tuples(st.just("group"), st.sampled_from(REQUIRED)),
    st.tuples(st.just("empty_rows"),),
)


def apply(mutation_spec: tuple, cols: dict[str, np.ndarray], path: Path) -> None:
    kind = mutation_spec[0]
    rng = np.random.default_rng(len(str(mutation_spec)))
    if kind == "drop":
        cols.pop(mutation_spec[1])
    elif kind == "dtype":
        name, dtype = mutation_spec[1], mutation_spec[2]
        allowed = ("i", "u", "S") if name == "object_id" else next(
            s[name].dtypes for s in SCHEMAS.values() if name in s)
        if dtype_matches(np.dtype(dtype), allowed):
            dtype = "complex64"  # the drawn dtype is a valid one for this column: pick an invalid one
        cols[name] = cols[name].astype(dtype)
    elif kind == "shape":
        name, how = mutation_spec[1], mutation_spec[2]
        value = cols[name]
        cut = value[:, :, :2] if name == "lightcurve" else value[..., :-1]  # L is free for a lone lightcurve
        cols[name] = [value[:-1], cut if value.ndim > 1 else value[:-1], value[None],
                      value.reshape(len(value), -1)[:, :1] if value.ndim > 2 else np.concatenate([value, value])][how]
        if np.array_equal(np.shape(cols[name]), np.shape(value)):
            cols[name] = value[:-1]
    elif kind == "nonfinite":
        name = mutation_spec[1]
        flat = cols[name].reshape(-1)
        index = mutation_spec[3] % flat.size
        if name == "lightcurve":  # padding entries are not data: poison a real time value
            index = int(np.flatnonzero(cols[name][:, :, 2, :].reshape(-1) > 0)[0])
            flat = cols[name][:, :, 0, :].reshape(-1).copy()
            flat[index] = mutation_spec[2]
            cols[name][:, :, 0, :] = flat.reshape(cols[name][:, :, 0, :].shape)
        else:
            flat[index] = mutation_spec[2]
    elif kind == "negative_ivar":
        flat = cols[mutation_spec[1]].reshape(-1)
        flat[mutation_spec[2] % flat.size] = -1.0
    elif kind == "coordinate":
        cols[mutation_spec[1]][rng.integers(len(cols["ra"]))] = mutation_spec[2]
    elif kind == "duplicate_id":
        ids = cols["object_id"]
        ids[mutation_spec[1] % len(ids)] = ids[(mutation_spec[1] + 1) % len(ids)]
    elif kind == "healpix":  # a stored healpix that disagrees with the coordinates
        from astrofm.data.layout import healpix_index

        cols["healpix"] = healpix_index(cols["ra"], cols["dec"])
        cols["healpix"][0] = (cols["healpix"][0] + mutation_spec[1]) % 3072
    elif kind == "empty_rows":
        cols = {k: v[:0] for k, v in cols.items()}
    if kind == "group":
        with h5py.File(path, "w") as f:
            for k, v in cols.items():
                if k == mutation_spec[1]:
                    f.create_group(k).create_dataset("values", data=v)
                else:
                    f.create_dataset(k, data=v)
        return
    if kind == "garbage":
        path.write_bytes(mutation_spec[1])
        return
    write_raw(path, cols)
    if kind == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * mutation_spec[1])])


@settings(max_examples=520, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation_spec=mutation, seed=st.integers(0, 3), n=st.integers(2, 5))
def test_malformed_shard_gives_clear_error(mutation_spec, seed, n):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "shards" / "001-of-001.hdf5"
        path.parent.mkdir()
        apply(mutation_spec, valid_columns(n, seed), path)
        with pytest.raises(DataFormatError) as info:
            inspect_dataset(path.parent, progress=False)
        assert str(path) in str(info.value), str(info.value)
        assert info.value.problem


def test_the_unmutated_shard_is_valid(tmp_path):
    path = tmp_path / "shards" / "001-of-001.hdf5"
    path.parent.mkdir()
    write_raw(path, valid_columns(4, 0))
    summary = inspect_dataset(path.parent, progress=False)
    assert summary["n_objects"] == 4 and set(summary["modalities"]) == {"image", "spectrum", "lightcurve"}
