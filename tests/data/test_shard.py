"""MMU shard I/O: bit-exact round trips, MMU dtypes and layout, clear errors, atomic writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from astrofm.data.dataset import MMUDataset, write_dataset
from astrofm.data.modalities import ARRAY_MODALITIES
from astrofm.data.shard import Shard, write_shard
from astrofm.errors import DataFormatError
from tests.helpers.synthetic import make_samples

MMU_DTYPES = {  # mmu-format.md §3
    "image_array": "float32", "image_ivar": "float32", "image_mask": "bool", "image_psf_fwhm": "float32",
    "image_scale": "float32", "spectrum_flux": "float32", "spectrum_ivar": "float32", "spectrum_lambda": "float32",
    "spectrum_mask": "bool", "spectrum_lsf_sigma": "float32", "lightcurve": "float64",
}


def columns_of(samples, modalities=("image", "spectrum")):
    cols = {"object_id": np.array([int(s["object_id"]) for s in samples]), "ra": np.array([s["ra"] for s in samples]),
            "dec": np.array([s["dec"] for s in samples])}
    for m in modalities:
        cols.update(ARRAY_MODALITIES[m].to_columns([s[m] for s in samples]))
    return cols


def test_written_shard_reads_back_bit_for_bit(tmp_path):
    samples = make_samples(20, seed=3, modalities=("image", "spectrum", "lightcurve"))
    cols = columns_of(samples, ("image", "spectrum", "lightcurve"))
    cols["Z"] = np.linspace(0, 1, 20, dtype=np.float32)
    path = write_shard(tmp_path / "healpix=5" / "001-of-001.hdf5", cols)
    with h5py.File(path, "r") as f:
        assert not f.attrs.keys(), "MMU shards carry no attributes"
        assert all(isinstance(f[k], h5py.Dataset) for k in f), "MMU shards are flat: no groups"
        for name, values in cols.items():
            stored = f[name][()]
            assert stored.shape == values.shape, name
            if name in MMU_DTYPES:
                assert stored.dtype == np.dtype(MMU_DTYPES[name]), name
            np.testing.assert_array_equal(stored, values.astype(stored.dtype))
            assert stored.tobytes() == np.asarray(values, stored.dtype).tobytes(), name
        assert f["image_band"].dtype == np.dtype("S5")
        assert f["image_band"][0, 0] == b"des-g"
        assert f["object_id"].dtype == np.int64
        assert f["healpix"].dtype == np.int64


def test_samples_round_trip_through_dataset(tmp_path):
    samples = make_samples(40, seed=4, modalities=("image", "spectrum", "lightcurve"))
    write_dataset(tmp_path, samples)
    ds = MMUDataset(tmp_path)
    assert len(ds) == 40
    assert set(ds.modalities) == {"image", "spectrum", "lightcurve"}
    for original in samples[::7]:
        back = ds.get(original["object_id"])
        for m in ("image", "spectrum"):
            for key, value in original[m].items():
                if key == "band":
                    assert back[m][key] == value
                else:
                    np.testing.assert_array_equal(back[m][key], value)
        lc, lc_back = original["lightcurve"], back["lightcurve"]
        order = np.lexsort((lc["time"], lc["band"]))
        for key in ("time", "flux", "flux_err", "band"):
            np.testing.assert_array_equal(lc_back[key], np.asarray(lc[key])[order])


def test_healpix_matches_healpy(tmp_path):
    healpy = pytest.importorskip("healpy")
    rng = np.random.default_rng(0)
    ra, dec = rng.uniform(0, 360, 2000), np.degrees(np.arcsin(rng.uniform(-1, 1, 2000)))
    from astrofm.data.layout import healpix_index

    expected = healpy.ang2pix(16, ra, dec, nest=True, lonlat=True)
    np.testing.assert_array_equal(healpix_index(ra, dec), expected)


def test_legacy_survey_shared_mask_and_gaia_source_id_read(tmp_path):
    samples = make_samples(5, seed=5, modalities=("image",))
    cols = columns_of(samples, ("image",))
    cols["image_mask"] = np.ones((5, 8, 8), bool)  # LS: one mask for all bands
    cols["source_id"] = cols.pop("object_id")  # Gaia names its ids source_id
    path = tmp_path / "ls.hdf5"
    with h5py.File(path, "w") as f:  # written the MMU way: plain h5py, flat columns
        for k, v in cols.items():
            f.create_dataset(k, data=v, compression="lzf", chunks=True, maxshape=(None, *np.shape(v)[1:]))
    ds = MMUDataset(path)
    sample = ds[0]
    assert sample["image"]["mask"].shape == (4, 8, 8)
    assert sample["object_id"] == samples[0]["object_id"]


def test_write_shard_takes_gaia_source_id_and_upper_case_coordinates(tmp_path):
    """MMU's own spellings (Gaia's source_id, RA/DEC) are written as given, validated like the standard names."""
    samples = make_samples(5, seed=7, modalities=("image",))
    cols = columns_of(samples, ("image",))
    cols["source_id"] = 123456789 * 2**35 + np.arange(5, dtype=np.int64)  # level-12 HEALPix x 2^35 + n
    del cols["object_id"]
    cols["RA"], cols["DEC"] = cols.pop("ra"), cols.pop("dec")
    path = write_shard(tmp_path / "gaia.hdf5", cols)
    with h5py.File(path) as f:
        assert {"source_id", "RA", "DEC", "healpix"} <= set(f) and "object_id" not in f
    shard = MMUDataset(path)
    assert [s["object_id"] for s in shard] == [str(i) for i in cols["source_id"]]
    np.testing.assert_allclose([s["ra"] for s in shard], cols["RA"])

    cols["source_id"][3] = cols["source_id"][0]
    with pytest.raises(DataFormatError, match="unique") as info:
        write_shard(tmp_path / "dup.hdf5", cols)
    assert info.value.field == "object_id" and info.value.object_id == str(cols["source_id"][0])
    del cols["source_id"]
    with pytest.raises(DataFormatError, match="object_id or source_id"):
        write_shard(tmp_path / "none.hdf5", cols)
    assert not (tmp_path / "dup.hdf5").exists() and not (tmp_path / "none.hdf5").exists()


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda c: c.pop("spectrum_flux"), "spectrum_flux", "missing column"),
        (lambda c: c.update(spectrum_flux=c["spectrum_flux"].astype(np.float64)), "spectrum_flux", "wrong dtype"),
        (lambda c: c.update(image_ivar=c["image_ivar"][:, :3]), "image_ivar", "wrong shape"),
        (lambda c: c.update(ra=c["ra"][:-1]), "ra", "wrong shape"),
        (lambda c: c.update(object_id=np.zeros_like(c["object_id"])), "object_id", "unique"),
        (lambda c: c.update(dec=np.full_like(c["dec"], 95.0)), "dec", "out of range"),
    ],
)
def test_bad_layout_on_read_names_file_field_expected_found(tmp_path, mutate, field, words):
    cols = columns_of(make_samples(6, seed=6))
    mutate(cols)
    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as f:
        for k, v in cols.items():
            f.create_dataset(k, data=v)
    with pytest.raises(DataFormatError) as info:
        Shard(path)
    message = str(info.value)
    assert str(path) in message
    assert f"'{field}'" in message
    assert words in message


def test_nan_in_spectrum_names_the_object(tmp_path):
    cols = columns_of(make_samples(6, seed=7))
    cols["spectrum_flux"][4, 10] = np.nan
    path = tmp_path / "nan.hdf5"
    with h5py.File(path, "w") as f:
        for k, v in cols.items():
            f.create_dataset(k, data=v)
    ds = MMUDataset(path)  # layout is fine; values are checked when read
    ds[0]
    with pytest.raises(DataFormatError) as info:
        ds.get(int(cols["object_id"][4]))
    assert f"object_id={cols['object_id'][4]}" in str(info.value)
    assert "spectrum_flux" in str(info.value)
    assert "non-finite" in str(info.value)
    with pytest.raises(DataFormatError, match="non-finite"):
        write_shard(tmp_path / "out.hdf5", cols)
    assert not (tmp_path / "out.hdf5").exists()


def test_negative_ivar_rejected_on_write(tmp_path):
    cols = columns_of(make_samples(3, seed=8))
    cols["image_ivar"][1, 0, 0, 0] = -1
    with pytest.raises(DataFormatError, match="below the allowed minimum"):
        write_shard(tmp_path / "x.hdf5", cols)


@pytest.mark.parametrize("content", [b"", b"this is not an HDF5 file at all" * 10, "truncated"])
def test_empty_truncated_and_foreign_files(tmp_path, content):
    path = tmp_path / "healpix=1" / "001-of-001.hdf5"
    if content == "truncated":
        write_shard(path, columns_of(make_samples(50, seed=9)))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
    with pytest.raises(DataFormatError) as info:
        list(MMUDataset(tmp_path))
    assert str(path) in str(info.value)


def test_unknown_target_or_tabular_column_is_a_clear_error(galaxy_dir):
    with pytest.raises(DataFormatError, match="'REDSHIFT'"):
        MMUDataset(galaxy_dir, target_columns=["REDSHIFT"])
    with pytest.raises(DataFormatError, match="'NOPE'"):
        MMUDataset(galaxy_dir, tabular_columns=["NOPE"])
    with pytest.raises(DataFormatError, match="object_id=424242"):
        MMUDataset(galaxy_dir).get(424242)


def test_atomic_write_survives_sigkill(tmp_path):
    """A writer killed mid-write leaves the previous file intact and readable."""
    target = tmp_path / "healpix=3" / "001-of-001.hdf5"
    original = columns_of(make_samples(10, seed=10))
    write_shard(target, original)
    before = target.read_bytes()
    script = textwrap.dedent(f"""
        import numpy as np, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from astrofm.data import shard
        n = 4000
        cols = {{"object_id": np.arange(n), "ra": np.full(n, 1.0), "dec": np.full(n, 1.0),
                "spectrum_flux": np.ones((n, 7781), np.float32), "spectrum_lambda": np.ones((n, 7781), np.float32)}}
        real_create = shard.h5py.File.create_dataset
        def slow(self, name, **kw):
            print("writing", name, flush=True)
            import time; time.sleep(0.5)
            return real_create(self, name, **kw)
        shard.h5py.File.create_dataset = slow
        shard.write_shard({str(target)!r}, cols)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("writing spectrum"):
            break
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == before
    shard = Shard(target)
    np.testing.assert_array_equal(shard.object_ids, original["object_id"])
    leftovers = [p for p in target.parent.iterdir() if p.name.startswith(".")]
    assert leftovers, "the killed writer's temporary file stays hidden beside the target"
    assert len(MMUDataset(tmp_path).shards) == 1, "temporary files are never read as shards"


def test_long_and_non_ascii_band_names_are_stored_whole(tmp_path):
    """Band columns are as wide as the longest UTF-8 name (LS's 'des-g' stays S5)."""
    samples = make_samples(2, modalities=("image", "lightcurve"))
    for s in samples:
        s["image"]["band"] = ["lsst-u", "wise-w1", "des-g", "hsc-é"]
        s["lightcurve"]["band_names"] = ["V", "é"]
    path = write_dataset(tmp_path, samples)[0]
    with h5py.File(path, "r") as f:
        assert f["image_band"].dtype == np.dtype("S7") and f["lightcurve_band"].dtype == np.dtype("S2")
    sample = MMUDataset(tmp_path)[0]
    assert sample["image"]["band"] == ["lsst-u", "wise-w1", "des-g", "hsc-é"]
    assert sample["lightcurve"]["band_names"] == ["V", "é"]


def _two_objects(**columns):
    return {"object_id": np.array([1, 2]), "ra": np.array([10.0, 11.0]), "dec": np.array([0.0, 1.0]), **columns}


@pytest.mark.parametrize(("columns", "field", "found"), [
    ({"object_id": 5, "ra": 1.0, "dec": 1.0}, "object_id", "() i8"),
    (_two_objects(spectrum_flux=np.array([["a"], ["b"]]), spectrum_lambda=np.ones((2, 1))), "spectrum_flux", "S1"),
])
def test_bad_write_input_names_file_and_field_and_keeps_the_old_shard(tmp_path, columns, field, found):
    path = write_shard(tmp_path / "healpix=0" / "001-of-001.hdf5", _two_objects())
    before = path.read_bytes()
    with pytest.raises(DataFormatError) as info:
        write_shard(path, columns)
    assert (info.value.file, info.value.field, info.value.found) == (str(path), field, found)
    assert path.read_bytes() == before and os.listdir(path.parent) == [path.name]


def test_compressed_shard_with_empty_spectra(tmp_path):
    """Compression chunks need positive sizes: an empty wavelength axis (L = 0) still writes and reads back."""
    path = write_shard(tmp_path / "healpix=0" / "001-of-001.hdf5",
                       _two_objects(spectrum_flux=np.ones((2, 0)), spectrum_lambda=np.ones((2, 0))), compression="gzip")
    shard = Shard(path)
    assert shard.modalities["spectrum"] == {"L": 0}
    assert shard.read(["spectrum_flux"])["spectrum_flux"].shape == (2, 0)
    with h5py.File(path, "r") as f:
        assert f["spectrum_flux"].compression == f["ra"].compression == "gzip"
