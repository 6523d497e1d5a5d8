"""The simulated datasets are MMU datasets: columns, dtypes, polarities, positions, ids."""

from __future__ import annotations

import numpy as np
import pytest

from astrofm.data.crossmatch import crossmatch
from astrofm.data.layout import discover_shards, healpix_index
from astrofm.data.shard import Shard
from astrofm.sim import simulate
from astrofm.sim.validation import read_dataset

#: Columns MMU's own Legacy Survey reader indexes (mmu-format.md §6): name -> (dtype code, shape after N).
LEGACY_COLUMNS = {
    "image_array": ("f4", (4, "S", "S")), "image_ivar": ("f4", (4, "S", "S")), "image_mask": ("b1", ("S", "S")),
    "image_band": ("S5", (4,)), "image_psf_fwhm": ("f4", (4,)), "image_scale": ("f4", (4,)),
    "image_rgb": ("u1", ("S", "S", 3)), "blobmodel": ("u1", ("S", "S", 3)), "object_mask": ("u1", ("S", "S")),
    **{f"catalog_{c}": ("f4", (20,)) for c in ("FLUX_G", "FLUX_R", "FLUX_I", "FLUX_Z", "SHAPE_R", "SHAPE_E1",
                                                 "SHAPE_E2", "X", "Y")},
    "catalog_TYPE": ("S", (20,)),
    **{c: ("f4", ()) for c in ("EBV", "FLUX_G", "FLUX_R", "FLUX_I", "FLUX_Z", "FLUX_W1", "FLUX_W2", "FLUX_W3",
                               "FLUX_W4", "SHAPE_R", "SHAPE_E1", "SHAPE_E2")},
    "TYPE": ("S", ()), "object_id": ("S16", ()),
}
#: Columns MMU's own DESI reader indexes.
DESI_COLUMNS = {
    **{f"spectrum_{c}": ("f4", (7781,)) for c in ("flux", "ivar", "lsf_sigma", "lambda")},
    "spectrum_mask": ("b1", (7781,)),
    **{c: ("f4", ()) for c in ("Z", "ZERR", "EBV", *(f"{p}_{b}" for p in ("FLUX", "FLUX_IVAR", "FIBERFLUX",
                                                                            "FIBERTOTFLUX") for b in "GRZ"))},
    "ZWARN": ("i", ()), "object_id": ("i8", ()),
}


def _check_columns(path, expected, size):
    for file in discover_shards(path):
        shard = Shard(file)
        for name, (code, dims) in expected.items():
            info = shard.columns[name]
            kind_ok = info.dtype.kind == code[0] if code in ("S", "i") else info.dtype.str[1:] == code
            assert kind_ok, f"{file}: {name} has dtype {info.dtype}, expected {code}"
            assert info.shape[1:] == tuple(size if d == "S" else d for d in dims), f"{name} shape {info.shape}"
        shard.close()


def test_mmu_reader_columns_at_64(tiny):
    _check_columns(tiny.datasets["legacysurvey"], LEGACY_COLUMNS, 64)
    _check_columns(tiny.datasets["desi"], DESI_COLUMNS, 64)


def test_mmu_reader_columns_at_160(tmp_path):
    universe = simulate(tmp_path / "sim160", preset="tiny", seed=1, image_size=160, n_galaxies=12, n_stars=6,
                        progress=False)
    _check_columns(universe.datasets["legacysurvey"], LEGACY_COLUMNS, 160)
    _check_columns(universe.datasets["desi"], DESI_COLUMNS, 160)
    bands = read_dataset(universe.datasets["legacysurvey"], ["image_band"])["image_band"]
    assert (bands == np.array([b"des-g", b"des-r", b"des-i", b"des-z"])).all()


@pytest.mark.parametrize("name", ["legacysurvey", "desi", "asassn", "gaia", "lamost"])
def test_every_dataset_reads_back_through_astrofm(tiny, name):
    dataset = tiny.dataset(name)
    samples = list(dataset)
    assert len(samples) == len(dataset) > 0
    ids = [s["object_id"] for s in samples]
    assert len(set(ids)) == len(ids)
    catalog = dataset.catalog
    assert (catalog.healpix == healpix_index(catalog.ra, catalog.dec)).all()
    modality = {"legacysurvey": "image", "desi": "spectrum", "asassn": "lightcurve", "lamost": "spectrum"}.get(name)
    if modality:
        assert all(modality in s for s in samples)


def test_mask_polarities_and_units(tiny):
    images = read_dataset(tiny.datasets["legacysurvey"], ["image_mask", "image_ivar", "image_array"])
    assert images["image_mask"].mean() > 0.98  # True = good pixel
    assert (images["image_ivar"][:, 0][~images["image_mask"]] == 0).all()
    assert 0.001 < np.median(np.abs(images["image_array"])) < 0.1  # nanomaggies per 0.262" pixel
    spectra = read_dataset(tiny.datasets["desi"], ["spectrum_mask", "spectrum_ivar", "spectrum_lambda"])
    assert 0 < spectra["spectrum_mask"].mean() < 0.02  # True = bad pixel
    assert (spectra["spectrum_ivar"][spectra["spectrum_mask"]] == 0).all()
    assert spectra["spectrum_lambda"][0, [0, -1]] == pytest.approx([3600.0, 9824.0])
    curves = read_dataset(tiny.datasets["asassn"], ["lightcurve", "lightcurve_band"])
    real = curves["lightcurve"][:, :, 2] > 0
    assert (curves["lightcurve_band"][0] == [b"asassn-V", b"asassn-g"]).all()
    times = curves["lightcurve"][:, 0, 0][real[:, 0]]
    assert times.min() > 55999 and times.max() < 58451  # MJD of the V-band era (nights 56000-58449)


def test_positions_are_jittered_per_survey(tiny):
    truth = tiny.truth("galaxies")
    ls = read_dataset(tiny.datasets["legacysurvey"], ["object_id", "ra", "dec"])
    order = np.argsort(truth["legacysurvey_object_id"])
    rows = order[np.searchsorted(truth["legacysurvey_object_id"], ls["object_id"], sorter=order)]
    dra = (ls["ra"] - truth["ra"][rows]) * np.cos(np.deg2rad(truth["dec"][rows])) * 3600
    ddec = (ls["dec"] - truth["dec"][rows]) * 3600
    assert np.std(dra) == pytest.approx(0.1, rel=0.15)
    assert np.std(ddec) == pytest.approx(0.1, rel=0.15)


def test_galaxy_surveys_cross_match_by_position(tiny):
    match = crossmatch({"legacysurvey": tiny.dataset("legacysurvey"), "desi": tiny.dataset("desi")},
                       radius_arcsec=1.0, how="outer")
    truth = tiny.truth("galaxies")
    both = match.columns["legacysurvey"] & match.columns["desi"]
    assert both.sum() == (truth["desi_object_id"] >= 0).sum()
    by_ls = dict(zip(truth["legacysurvey_object_id"].astype(str), truth["desi_object_id"]))
    paired = [by_ls[ls] == int(d) for ls, d in zip(match.columns["legacysurvey_object_id"][both],
                                                   match.columns["desi_object_id"][both])]
    assert np.mean(paired) > 0.995
    assert 0.5 < both.sum() / match.columns["legacysurvey"].sum() < 0.7  # ~60% of galaxies have spectra


def test_star_surveys_share_objects(tiny):
    truth = tiny.truth("stars")
    gaia = read_dataset(tiny.datasets["gaia"], ["object_id", "parallax", "phot_g_mean_mag", "bp_rp"])
    assert set(gaia["object_id"].tolist()) == set(truth["gaia_object_id"].tolist())
    order = np.argsort(truth["gaia_object_id"])
    rows = order[np.searchsorted(truth["gaia_object_id"], gaia["object_id"], sorter=order)]
    true_parallax = 1000.0 / truth["distance_pc"][rows]
    assert np.corrcoef(gaia["parallax"], true_parallax)[0, 1] > 0.9
    assert np.isfinite(gaia["bp_rp"]).all()
