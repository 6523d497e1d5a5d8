"""Cross-matching: one-to-one within the radius, inner/outer joins, RA wrap, saved and reused."""

from __future__ import annotations

import numpy as np
import pytest

from astrofm.cli import main
from astrofm.data import crossmatch as crossmatch_module
from astrofm.data.crossmatch import CrossMatch, CrossMatchDataset, crossmatch, default_path, load_or_crossmatch
from astrofm.data.dataset import MMUDataset, write_dataset
from astrofm.data.streaming import StreamingDataset, StreamingLoader
from astrofm.errors import DataFormatError
from tests.helpers.synthetic import image_item, lightcurve_item, spectrum_item


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Images of 400 objects; spectra of 60% of them at 0.1 arcsec jitter, plus 30 unrelated spectra.

    Objects straddle RA = 0/360 and sit near the pole, and each spectrum's
    flux equals its image's flux value so matches can be checked.
    """
    root = tmp_path_factory.mktemp("xmatch")
    rng = np.random.default_rng(0)
    n = 400
    ra = np.concatenate([rng.uniform(359.5, 360, n // 4), rng.uniform(0, 0.5, n // 4), rng.uniform(10, 11, n // 4),
                         rng.uniform(0, 360, n // 4)]) % 360
    dec = np.concatenate([rng.uniform(-1, 1, 3 * n // 4), rng.uniform(88.5, 89.9, n // 4)])
    images, spectra = [], []
    jitter = 0.1 / 3600
    for i in range(n):
        images.append({"object_id": f"B{i:04d}-{i}", "ra": ra[i], "dec": dec[i], "image": image_item(rng, 4, i)})
        if i % 5 < 3:
            d_ra = rng.normal() * jitter / np.cos(np.radians(dec[i]))
            spectra.append({"object_id": str(39600000000 + i), "ra": (ra[i] + d_ra) % 360,
                            "dec": dec[i] + rng.normal() * jitter, "spectrum": spectrum_item(rng, 16, i)})
    for k in range(30):
        spectra.append({"object_id": str(39700000000 + k), "ra": rng.uniform(200, 210), "dec": rng.uniform(-10, 10),
                        "spectrum": spectrum_item(rng, 16, -1)})
    write_dataset(root / "legacysurvey" / "dr10", images)
    write_dataset(root / "desi" / "dr1", spectra)
    return root


def datasets(root):
    return {"ls": MMUDataset(root / "legacysurvey" / "dr10"), "desi": MMUDataset(root / "desi" / "dr1")}


def test_inner_join_finds_every_true_pair_across_ra_wrap_and_pole(pair):
    match = crossmatch(datasets(pair))
    assert len(match) == 240
    assert np.nanmax(match.columns["desi_sep_arcsec"]) < 1.0
    ls_index = np.array([int(o.split("-")[1]) for o in match.columns["ls_object_id"]])
    desi_index = np.array([int(o) - 39600000000 for o in match.columns["desi_object_id"]])
    np.testing.assert_array_equal(ls_index, desi_index)
    wrapped = (match.columns["ra"] > 359.5) | (match.columns["ra"] < 0.5)
    assert wrapped.sum() > 100
    assert (match.columns["dec"] > 88.5).sum() > 50


def test_outer_join_keeps_unmatched_with_absent_modalities(pair):
    match = crossmatch(datasets(pair), how="outer")
    assert len(match) == 400 + 30
    assert match.columns["ls"].sum() == 400 and match.columns["desi"].sum() == 270
    unmatched = ~match.columns["ls"]
    assert (match.columns["ls_idx"][unmatched] == -1).all()
    assert (match.columns["ls_object_id"][unmatched] == "").all()
    source = CrossMatchDataset(datasets(pair), match)
    samples = list(source)
    with_both = [s for s in samples if "image" in s and "spectrum" in s]
    assert len(with_both) == 240
    assert all(s["image"]["flux"][0, 0, 0] == s["spectrum"]["flux"][0] for s in with_both)
    assert sum("image" in s and "spectrum" not in s for s in samples) == 160
    assert sum("spectrum" in s and "image" not in s for s in samples) == 30
    one = source.get(with_both[0]["source_ids"]["desi"])
    assert one["object_id"] == with_both[0]["object_id"]


def test_radius_matters(pair):
    tight = crossmatch(datasets(pair), radius_arcsec=0.05)
    assert len(tight) < 240


def test_saved_beside_the_data_reused_and_refreshed(pair):
    dsets = datasets(pair)
    path = default_path(dsets, 1.0, "inner")
    assert path.parent == pair / "crossmatch"
    first = load_or_crossmatch(dsets)
    assert path.exists()
    stamp = path.stat().st_mtime_ns
    again = load_or_crossmatch(dsets)
    assert path.stat().st_mtime_ns == stamp, "an unchanged input reuses the saved match"
    np.testing.assert_array_equal(first.columns["desi_idx"], again.columns["desi_idx"])
    loaded, meta = CrossMatch.load(path)
    assert meta["radius_arcsec"] == 1.0 and loaded.names == ["ls", "desi"]
    table = loaded.to_table()
    assert len(table) == 240 and "desi_sep_arcsec" in table.colnames


def test_crossmatch_streams_with_workers(pair):
    source = CrossMatchDataset.open(datasets(pair), how="outer")
    loader = StreamingLoader(StreamingDataset(source, batch_size=32, block_size=50), num_workers=2)
    ids = [o for b in loader for o in b.object_id]
    assert sorted(ids) == sorted(source.match.columns["object_id"])
    batch = next(iter(loader))
    assert batch["spectrum"].presence.sum() < len(batch)


def test_cli_crossmatch(pair, tmp_path, capsys):
    out = tmp_path / "match.parquet"
    code = main(["crossmatch", f"ls={pair / 'legacysurvey' / 'dr10'}", f"desi={pair / 'desi' / 'dr1'}",
                 "--radius", "1", "--out", str(out), "--how", "outer"])
    assert code == 0
    assert "430 objects" in capsys.readouterr().out
    assert len(CrossMatch.load(out)[0]) == 430


def test_outer_join_ids_are_unique_when_surveys_number_objects_alike(tmp_path):
    """Objects without the reference are named '<dataset>:<id>'; a bare id of several datasets is refused."""
    rng = np.random.default_rng(3)

    def write(name: str, modality: str, objects: list[tuple[int, float]]) -> MMUDataset:
        makers = {"spectrum": lambda v: spectrum_item(rng, 8, v), "image": lambda v: image_item(rng, 4, v),
                  "lightcurve": lambda v: {**lightcurve_item(rng, 4), "flux": np.full(4, v)}}
        write_dataset(tmp_path / name, [{"object_id": str(i), "ra": ra, "dec": 0.0, modality: makers[modality](ra)}
                                        for i, ra in objects])
        return MMUDataset(tmp_path / name)

    dsets = {"a": write("a", "spectrum", [(100, 10.0), (101, 10.5)]),
             "b": write("b", "image", [(100, 10.0), (101, 11.0), (7, 11.5)]),
             "c": write("c", "lightcurve", [(7, 12.0)])}
    match = crossmatch(dsets, how="outer")
    assert sorted(match.columns["object_id"]) == ["100", "101", "b:101", "b:7", "c:7"]
    source = CrossMatchDataset(dsets, match)
    assert sorted(s["object_id"] for s in source) == sorted(match.columns["object_id"])
    ours = source.get(101)  # the cross-match id wins over b's unmatched 101
    assert ours["ra"] == 10.5 and ours["spectrum"]["flux"][0] == 10.5 and "image" not in ours
    theirs = source.get("b:101")
    assert theirs["ra"] == 11.0 and theirs["image"]["flux"][0, 0, 0] == 11.0 and theirs["source_ids"] == {"b": "101"}
    assert source.get("b:100")["object_id"] == "100" and source.get("a:101")["object_id"] == "101"
    assert source.get("c:7")["lightcurve"]["flux"][0] == 12.0
    with pytest.raises(DataFormatError, match="ambiguous") as info:
        source.get(7)
    assert info.value.object_id == "7"


def test_a_match_saved_in_an_older_format_is_recomputed(pair, tmp_path, monkeypatch):
    path = tmp_path / "match.parquet"
    monkeypatch.setattr(crossmatch_module, "_FORMAT_VERSION", 1)
    load_or_crossmatch(datasets(pair), how="outer", path=path)
    monkeypatch.undo()
    load_or_crossmatch(datasets(pair), how="outer", path=path)
    assert CrossMatch.load(path)[1]["format"] == crossmatch_module._FORMAT_VERSION == 2
