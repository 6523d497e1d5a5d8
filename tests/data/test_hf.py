"""Hugging Face interop: hub-schema Parquet copies (local and on a loopback hub) read into samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from astrofm.data.dataset import MMUDataset, write_dataset
from astrofm.data.hf import HFDataset, export_parquet, parse_hub_id, to_hf_dataset
from astrofm.data.sources import open_source
from astrofm.data.streaming import StreamingDataset, StreamingLoader
from astrofm.errors import DataFormatError
from tests.helpers.fakehub import FakeHub
from tests.helpers.synthetic import make_samples

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory, galaxy_dir):
    out = tmp_path_factory.mktemp("parquet") / "data"
    source = MMUDataset(galaxy_dir, target_columns=["Z"], tabular_columns=["MAG_G", "MAG_R"])
    export_parquet(source, out, rows_per_file=120)
    return out


def assert_same_sample(a, b):
    assert a["object_id"] == b["object_id"]
    for m in ("image", "spectrum"):
        for key, value in a[m].items():
            if key == "band":
                assert b[m][key] == value
            else:
                np.testing.assert_array_equal(np.asarray(b[m][key]), np.asarray(value))
    np.testing.assert_array_equal(a["tabular"]["values"], b["tabular"]["values"])
    assert a["targets"]["Z"] == pytest.approx(b["targets"]["Z"])


def test_parquet_copy_reads_as_the_same_samples(galaxies, parquet_dir):
    assert sorted(p.name for p in parquet_dir.iterdir()) == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    copy = HFDataset.from_parquet(parquet_dir, target_columns=["Z"], tabular_columns=["MAG_G", "MAG_R"])
    assert len(copy) == 300
    assert set(copy.modalities) == {"image", "spectrum", "tabular"}
    by_id = {s["object_id"]: s for s in copy}
    for i in (0, 99, 299):
        original = galaxies[i]
        assert_same_sample(original, by_id[original["object_id"]])
    assert isinstance(open_source(parquet_dir), HFDataset)


def test_parquet_streams_in_row_groups_exactly_once(parquet_dir):
    copy = HFDataset.from_parquet(parquet_dir)
    loader = StreamingLoader(StreamingDataset(copy, batch_size=25, buffer_size=40), num_workers=2)
    ids = [o for b in loader for o in b.object_id]
    assert len(ids) == 300 and len(set(ids)) == 300


def test_to_hf_dataset_interop(galaxies):
    dataset = to_hf_dataset(galaxies)
    assert dataset.num_rows == 300
    assert set(dataset.features) >= {"object_id", "image", "spectrum", "Z", "MAG_G"}
    row = dataset.with_format("numpy")[5]
    np.testing.assert_array_equal(row["image"]["flux"], galaxies[5]["image"]["flux"])
    streaming = to_hf_dataset(galaxies, streaming=True)
    assert next(iter(streaming))["object_id"] == galaxies[0]["object_id"]


def test_hub_ids_parse():
    assert parse_hub_id("hf://MultimodalUniverse/desi@v1.0") == ("MultimodalUniverse/desi", "v1.0")
    assert parse_hub_id("MultimodalUniverse/legacysurvey") == ("MultimodalUniverse/legacysurvey", None)
    assert parse_hub_id("/some/local/path") is None


def test_hub_dataset_through_loopback_hub(parquet_dir, galaxies, tmp_path):
    """``HFDataset.from_hub`` against a hub served on 127.0.0.1 (no internet)."""
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    for f in parquet_dir.iterdir():
        (repo / "data" / f.name).write_bytes(f.read_bytes())
    code = (
        "import json; from astrofm.data.sources import open_source\n"
        "ds = open_source('hf://MultimodalUniverse/sim-galaxies@v1', target_columns=['Z'])\n"
        "samples = list(ds)\n"
        "print(json.dumps({'n': len(samples), 'ids': [s['object_id'] for s in samples][:3],"
        " 'flux': float(samples[0]['spectrum']['flux'][5]), 'z': samples[0]['targets']['Z']}))\n"
    )
    with FakeHub() as hub:
        hub.add("MultimodalUniverse/sim-galaxies", repo)
        env = dict(os.environ, HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_OFFLINE="0",
                   HF_DATASETS_OFFLINE="0", PYTHONPATH=str(REPO_ROOT))
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["n"] == 300
    first = galaxies.get(out["ids"][0])
    assert out["flux"] == pytest.approx(float(first["spectrum"]["flux"][5]))
    assert out["z"] == pytest.approx(first["targets"]["Z"])
    assert any(r.startswith("GET /datasets/MultimodalUniverse/sim-galaxies/resolve/") for r in hub.requests)


def test_bad_parquet_is_a_clear_error(tmp_path):
    bad = tmp_path / "train-00000-of-00001.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(DataFormatError, match="not a readable Parquet file") as info:
        HFDataset.from_parquet(tmp_path)
    assert str(bad) in str(info.value)


def _curve(bands: list[int]) -> dict:
    n = len(bands)
    return {"time": np.arange(1.0, n + 1), "flux": 5.0 + np.arange(n), "flux_err": np.full(n, 0.1),
            "band": np.array(bands), "band_names": ["g", "r", "i"]}


def test_light_curve_band_indices_survive_parquet(tmp_path):
    """A band index means the same band for every object of a Parquet copy, as in the HDF5 dataset, even for an
    object observed in one band only."""
    samples = [{"object_id": "1", "ra": 10.0, "dec": 0.0, "lightcurve": _curve([0, 1, 2])},
               {"object_id": "2", "ra": 10.0001, "dec": 0.0, "lightcurve": _curve([2, 2])}]
    write_dataset(tmp_path / "mmu", samples)
    export_parquet(MMUDataset(tmp_path / "mmu"), tmp_path / "parquet")
    curves = {s["object_id"]: s["lightcurve"] for s in HFDataset.from_parquet(tmp_path / "parquet")}
    assert curves["1"]["band"].tolist() == [0, 1, 2]
    assert curves["2"]["band"].tolist() == [2, 2]
    assert curves["1"]["band_names"] == curves["2"]["band_names"] == ["g", "r", "i"]
    np.testing.assert_array_equal(curves["2"]["flux"], [5.0, 6.0])


def test_hub_light_curves_stored_as_lists_of_points_share_band_indices(tmp_path):
    """A hub copy storing each light curve as a list of {band, time, flux, flux_err} points."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def point(band: str, time: float) -> dict:
        return {"band": band, "time": time, "flux": 1.0, "flux_err": 0.1}

    pq.write_table(pa.table({"object_id": ["1", "2"], "lightcurve": [[point("i", 1.0)],
                                                                     [point("g", 1.0), point("i", 2.0)]]}),
                   tmp_path / "train.parquet")
    curves = {s["object_id"]: s["lightcurve"] for s in HFDataset.from_parquet(tmp_path)}
    assert curves["1"]["band_names"] == curves["2"]["band_names"] == ["i", "g"]
    assert curves["1"]["band"].tolist() == [0] and curves["2"]["band"].tolist() == [1, 0]


def test_objects_without_a_modality_export_and_read_back_without_it(tmp_path):
    """A shard lacking spectra (healpix pixel without them) exports its objects with a null spectrum."""
    write_dataset(tmp_path / "mmu", make_samples(2, modalities=("spectrum",), ra_range=(10, 10), dec_range=(0, 0)))
    write_dataset(tmp_path / "mmu", make_samples(1, modalities=(), ra_range=(40, 40), dec_range=(0, 0), id_offset=7))
    source = MMUDataset(tmp_path / "mmu")
    export_parquet(source, tmp_path / "parquet")
    copy = {s["object_id"]: s for s in HFDataset.from_parquet(tmp_path / "parquet")}
    assert sorted(copy) == ["1000", "1001", "7"] and "spectrum" not in copy["7"]
    np.testing.assert_array_equal(copy["1001"]["spectrum"]["flux"], source.get("1001")["spectrum"]["flux"])
