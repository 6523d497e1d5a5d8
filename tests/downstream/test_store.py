"""The embedding store: round trips, streaming appends, resume, atomicity, bad stores, exports."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.table import Table

from astrofm.downstream import store as store_module
from astrofm.downstream.store import DIGEST_BLOCK_ROWS, MANIFEST, EmbeddingStore
from astrofm.errors import ConfigError, DataFormatError
from astrofm.utils import atomic
from tests.downstream.synthetic import unit


def _vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return unit(np.random.default_rng(seed).normal(size=(n, dim)))


def test_round_trip_and_metadata(tmp_path):
    X = _vectors(500)
    ids = np.arange(10_000, 10_500)
    store = EmbeddingStore.create(tmp_path / "s", model="galaxy-clip", model_version="1.2",
                                  metadata={"dataset": "sim"})
    assert store.append("image", ids, X) == 500
    reopened = EmbeddingStore.open(tmp_path / "s")
    assert reopened.model == "galaxy-clip" and reopened.model_version == "1.2"
    assert reopened.metadata == {"dataset": "sim"}
    assert reopened.modalities == ("image",) and reopened.dim("image") == 16
    assert reopened.count("image") == 500 and reopened.normalization("image") == "l2"
    vectors = reopened.vectors("image")
    assert isinstance(vectors, np.memmap) and not vectors.flags.writeable
    np.testing.assert_array_equal(vectors, X)
    np.testing.assert_array_equal(reopened.object_ids("image"), ids.astype(str))
    np.testing.assert_array_equal(reopened.get("image", ["10007", 10003]), X[[7, 3]])
    with h5py.File(tmp_path / "s" / "image.h5") as handle:  # readable by plain h5py too
        np.testing.assert_array_equal(handle["vectors"][:500], X)


@pytest.mark.parametrize("chunk", [1, 7, 333, 5000])
def test_streaming_appends_equal_one_append(tmp_path, chunk):
    X = _vectors(1500, seed=1)
    ids = np.array([f"obj-{i}" for i in range(1500)])
    store = EmbeddingStore.create(tmp_path / "s", model="m")
    for lo in range(0, len(X), chunk):
        store.append("spectrum", ids[lo:lo + chunk], X[lo:lo + chunk])
    reference = EmbeddingStore.create(tmp_path / "ref", model="m")
    reference.append("spectrum", ids, X)
    np.testing.assert_array_equal(store.vectors("spectrum"), X)
    np.testing.assert_array_equal(store.object_ids("spectrum"), ids)
    assert store.fingerprint("spectrum") == reference.fingerprint("spectrum")


def test_digests_cover_full_blocks_and_verify_detects_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "DIGEST_BLOCK_ROWS", 100)
    store = EmbeddingStore.create(tmp_path / "s", model="m")
    store.append("image", np.arange(250), _vectors(250))
    assert len(json.loads((tmp_path / "s" / MANIFEST).read_text())["modalities"]["image"]["block_digests"]) == 2
    before = store.fingerprint("image")
    store.append("image", [250], _vectors(1, seed=5))
    assert store.fingerprint("image") != before
    EmbeddingStore.open(tmp_path / "s").verify()
    with h5py.File(tmp_path / "s" / "image.h5", "r") as handle:
        offset = handle["vectors"].id.get_offset()
    with open(tmp_path / "s" / "image.h5", "r+b") as handle:  # flip a value in the first block
        handle.seek(offset + 4 * 16 * 3)
        handle.write(np.float32(9.0).tobytes())
    with pytest.raises(DataFormatError, match="changed since they were written"):
        EmbeddingStore.open(tmp_path / "s").verify()
    assert DIGEST_BLOCK_ROWS == 65_536  # the module constant itself is untouched outside this test


def test_resume_after_partial_run(tmp_path):
    X = _vectors(300)
    ids = np.arange(300).astype(str)
    first = EmbeddingStore.create(tmp_path / "s", model="m", model_version="1")
    first.append("image", ids[:120], X[:120])
    with pytest.raises(ConfigError, match="one writer at a time"):
        EmbeddingStore.open(tmp_path / "s", mode="a")
    assert EmbeddingStore.open(tmp_path / "s").count("image") == 120  # readers need no lock
    first.close()  # the first run ends
    resumed = EmbeddingStore.create(tmp_path / "s", model="m", model_version="1", exist_ok=True)
    np.testing.assert_array_equal(resumed.missing("image", ids), ids[120:])
    assert resumed.contains("spectrum", ids[:3]).tolist() == [False] * 3
    assert resumed.append("image", ids[100:], X[100:], skip_existing=True) == 180
    np.testing.assert_array_equal(resumed.vectors("image"), X)
    resumed.close()
    with pytest.raises(ConfigError, match="model"):
        EmbeddingStore.create(tmp_path / "s", model="other", exist_ok=True)
    with pytest.raises(ConfigError, match="already exists"):
        EmbeddingStore.create(tmp_path / "s", model="m", model_version="1")


def test_capacity_reservation_and_growth(tmp_path):
    store = EmbeddingStore.create(tmp_path / "s", model="m")
    store.add_modality("image", 16, capacity=5000)
    size = (tmp_path / "s" / "image.h5").stat().st_size
    assert size >= 5000 * 16 * 4
    X = _vectors(6000)
    store.append("image", np.arange(6000), X)  # grows past the reservation
    np.testing.assert_array_equal(EmbeddingStore.open(tmp_path / "s").vectors("image"), X)


def test_interrupted_append_keeps_committed_rows(tmp_path, monkeypatch):
    X = _vectors(200)
    store = EmbeddingStore.create(tmp_path / "s", model="m")
    store.append("image", np.arange(100), X[:100])

    def crash() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "_write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        store.append("image", np.arange(100, 200), X[100:])  # rows written, commit never happens
    monkeypatch.undo()
    store.close()  # the writer died
    reopened = EmbeddingStore.open(tmp_path / "s", mode="a")
    assert reopened.count("image") == 100
    np.testing.assert_array_equal(reopened.vectors("image"), X[:100])
    reopened.append("image", np.arange(100, 200), X[100:])
    np.testing.assert_array_equal(EmbeddingStore.open(tmp_path / "s").vectors("image"), X)


def test_bad_appends_raise_clear_errors(tmp_path):
    store = EmbeddingStore.create(tmp_path / "s", model="m")
    store.append("image", ["a", "b"], _vectors(2))
    with pytest.raises(DataFormatError, match="dimension mismatch") as info:
        store.append("image", ["c"], _vectors(1, dim=8))
    assert info.value.expected == 16 and info.value.found == 8
    bad = _vectors(3)
    bad[1, 4] = np.nan
    with pytest.raises(DataFormatError, match="non-finite") as info:
        store.append("image", ["c", "d", "e"], bad)
    assert info.value.object_id == "d"
    with pytest.raises(DataFormatError, match="already stored") as info:
        store.append("image", ["a"], _vectors(1))
    assert info.value.object_id == "a"
    with pytest.raises(DataFormatError, match="repeated"):
        store.append("image", ["x", "x"], _vectors(2))
    with pytest.raises(DataFormatError, match="differ"):
        store.append("image", ["x", "y"], _vectors(3))
    with pytest.raises(DataFormatError, match="L2-normalized") as info:
        store.append("image", ["z"], 2 * _vectors(1))
    assert info.value.object_id == "z"
    with pytest.raises(DataFormatError, match="too long"):
        store.append("image", ["q" * 65], _vectors(1))
    with pytest.raises(DataFormatError, match="not in store") as info:
        store.get("image", ["a", "nope"])
    assert info.value.object_id == "nope"
    with pytest.raises(DataFormatError, match="modality not in store"):
        store.vectors("spectrum")
    with pytest.raises(ConfigError, match="read-only"):
        EmbeddingStore.open(tmp_path / "s").append("image", ["w"], _vectors(1))
    assert EmbeddingStore.open(tmp_path / "s").count("image") == 2


def test_unnormalized_store_accepts_any_norm(tmp_path):
    store = EmbeddingStore.create(tmp_path / "s", model="m", normalization="none")
    store.append("tabular", ["a"], np.array([[3.0, 4.0]]))
    assert store.normalization("tabular") == "none"


def test_truncated_or_mismatched_stores_raise(tmp_path):
    store = EmbeddingStore.create(tmp_path / "s", model="m")
    store.append("image", np.arange(2000), _vectors(2000))
    other = EmbeddingStore.create(tmp_path / "other", model="m")
    other.append("image", np.arange(10), _vectors(10))

    with pytest.raises(DataFormatError, match="not an embedding store"):
        EmbeddingStore.open(tmp_path / "missing")
    path = tmp_path / "s" / "image.h5"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="truncated"):
        EmbeddingStore.open(tmp_path / "s")
    path.write_bytes((tmp_path / "other" / "image.h5").read_bytes())
    with pytest.raises(DataFormatError, match="another store"):
        EmbeddingStore.open(tmp_path / "s")
    path.write_bytes(data)
    manifest = json.loads((tmp_path / "s" / MANIFEST).read_text())
    manifest["modalities"]["image"]["dim"] = 32
    (tmp_path / "s" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataFormatError, match="dimension differs") as info:
        EmbeddingStore.open(tmp_path / "s")
    assert info.value.expected == 32
    manifest["modalities"]["image"].update(dim=16, count=10**6)
    (tmp_path / "s" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataFormatError, match="fewer rows"):
        EmbeddingStore.open(tmp_path / "s")
    (tmp_path / "s" / MANIFEST).write_text("{not json")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        EmbeddingStore.open(tmp_path / "s")


def test_exports_and_catalog_join(tmp_path):
    X_img, X_spec = _vectors(6, seed=1), _vectors(4, dim=8, seed=2)
    store = EmbeddingStore.create(tmp_path / "s", model="m")
    store.append("image", np.arange(6), X_img)
    store.append("spectrum", [5, 1, 9, 3], X_spec)

    table = store.to_table()
    assert list(table["object_id"]) == ["0", "1", "2", "3", "4", "5", "9"]
    assert table["image"].shape == (7, 16) and table["spectrum"].shape == (7, 8)
    assert table["spectrum"].mask[:, 0].tolist() == [True, False, True, False, True, False, False]
    np.testing.assert_array_equal(table["spectrum"][1], X_spec[1])
    assert table["image"].mask[-1].all()

    dataset = store.to_hf(["spectrum"])
    assert dataset.num_rows == 4 and dataset.column_names == ["object_id", "spectrum"]
    np.testing.assert_allclose(dataset[0]["spectrum"], X_spec[0])
    parquet = pq.read_table(store.to_parquet(tmp_path / "e.parquet"))
    assert parquet.column("object_id").to_pylist() == list(table["object_id"])
    assert parquet.column("spectrum").null_count == 3

    catalog = Table({"object_id": np.array([1, 3, 5, 77]), "z": [0.1, 0.3, 0.5, 0.7]})
    joined = store.join(catalog, ["image"])
    assert joined["object_id"].tolist() == ["1", "3", "5"]
    np.testing.assert_array_equal(joined["image"], X_img[[1, 3, 5]])
    np.testing.assert_array_equal(joined["z"], [0.1, 0.3, 0.5])
    catalog.write(tmp_path / "c.ecsv")
    assert len(store.join(tmp_path / "c.ecsv", ["spectrum"])) == 3
    with pytest.raises(DataFormatError, match="no object_id column"):
        store.join(Table({"id": [1]}))


def test_reader_keeps_its_rows_when_the_writer_grows_the_file(tmp_path):
    X = _vectors(1000)
    writer = EmbeddingStore.create(tmp_path / "s", model="m")
    writer.append("image", np.arange(1000), X)
    reader = EmbeddingStore.open(tmp_path / "s")
    writer.append("image", np.arange(1000, 1500), _vectors(500, seed=1))  # past the capacity: file rewritten
    np.testing.assert_array_equal(reader.vectors("image"), X)
    np.testing.assert_array_equal(reader.object_ids("image"), np.arange(1000).astype(str))
    reader.verify()
    assert EmbeddingStore.open(tmp_path / "s").count("image") == 1500
    reader.close()
    with pytest.raises(ConfigError, match="closed"):
        reader.vectors("image")


def test_writer_reads_the_manifest_after_taking_the_lock(tmp_path, monkeypatch):
    first = EmbeddingStore.create(tmp_path / "s", model="m")
    first.append("image", ["a0", "a1"], _vectors(2))
    attach = EmbeddingStore._attach

    def meanwhile(self, mod):  # the first writer commits more rows and quits while the second one opens
        attach(self, mod)
        if self is not first and first.writable:
            first.append("image", ["b0", "b1"], _vectors(2, seed=1))
            first.close()

    monkeypatch.setattr(EmbeddingStore, "_attach", meanwhile)
    with pytest.raises(ConfigError, match="one writer at a time"):
        EmbeddingStore.open(tmp_path / "s", mode="a")
    first.close()
    second = EmbeddingStore.open(tmp_path / "s", mode="a")
    second.append("image", ["c0"], _vectors(1, seed=2))
    assert EmbeddingStore.open(tmp_path / "s").object_ids("image").tolist() == ["a0", "a1", "c0"]


def _interrupt_once(monkeypatch, name: str) -> list[Path]:
    """Make ``astrofm.utils.atomic.<name>`` raise KeyboardInterrupt on its next call; collect its argument."""
    original, seen = getattr(atomic, name), []

    def interrupted(path):
        seen.append(Path(path))
        monkeypatch.setattr(atomic, name, original)
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic, name, interrupted)
    return seen


@pytest.mark.parametrize("grows", [False, True])
def test_interrupt_after_a_rename_keeps_memory_in_step_with_disk(tmp_path, monkeypatch, grows):
    n = 1000 if grows else 100
    X, Y, Z = _vectors(n), _vectors(100, seed=1), _vectors(100, seed=2)
    store = EmbeddingStore.create(tmp_path / "s", model="m")
    store.append("image", [f"a{i}" for i in range(n)], X)
    _interrupt_once(monkeypatch, "_fsync_dir")  # Ctrl-C just after the grown file / the manifest is renamed in
    with pytest.raises(KeyboardInterrupt):
        store.append("image", [f"b{i}" for i in range(100)], Y)
    on_disk = EmbeddingStore.open(tmp_path / "s").count("image")
    assert store.count("image") == on_disk == (n if grows else n + 100)
    store.append("image", [f"b{i}" for i in range(100)], Y, skip_existing=True)
    store.append("image", [f"c{i}" for i in range(100)], Z)
    store.close()
    reader = EmbeddingStore.open(tmp_path / "s")
    np.testing.assert_array_equal(reader.vectors("image"), np.concatenate([X, Y, Z]))
    assert len(set(reader.object_ids("image").tolist())) == n + 200
    reader.verify()


def test_rejected_resume_releases_the_lock(tmp_path):
    EmbeddingStore.create(tmp_path / "s", model="m", model_version="1").close()
    with pytest.raises(ConfigError, match="model") as info:  # ``info`` keeps the traceback, as a notebook would
        EmbeddingStore.create(tmp_path / "s", model="m", model_version="2", exist_ok=True)
    EmbeddingStore.create(tmp_path / "s", model="m", model_version="1", exist_ok=True).close()
    assert info.value is not None


def test_temp_file_of_a_killed_grow_is_removed_by_the_next_writer(tmp_path, monkeypatch):
    store = EmbeddingStore.create(tmp_path / "s", model="m")
    store.append("image", np.arange(1000), _vectors(1000))
    synced = _interrupt_once(monkeypatch, "_fsync_file")
    with pytest.raises(KeyboardInterrupt):
        store.append("image", np.arange(1000, 1100), _vectors(100, seed=1))  # grows: the copy is synced first
    store.close()
    synced[0].write_bytes(b"\0" * 4096)  # what a writer killed at that point leaves behind
    EmbeddingStore.open(tmp_path / "s").close()
    assert synced[0].exists()  # readers never delete
    EmbeddingStore.open(tmp_path / "s", mode="a").close()
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [".lock", "image.h5", MANIFEST]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m["modalities"]["image"].pop("dim"), "modalities.image.dim"),
        (lambda m: m["modalities"]["image"].pop("block_digests"), "modalities.image.block_digests"),
        (lambda m: m["modalities"]["image"].update(count="abc"), "modalities.image.count"),
        (lambda m: m["modalities"]["image"].update(file="../x.h5"), "modalities.image.file"),
        (lambda m: m.update(modalities=[]), "modalities"),
        (lambda m: m.update(id_width="64"), "id_width"),
    ],
)
def test_bad_manifest_entries_name_the_field(tmp_path, change, field):
    store = EmbeddingStore.create(tmp_path / "s", model="m")
    store.append("image", ["a"], _vectors(1))
    store.close()
    manifest = json.loads((tmp_path / "s" / MANIFEST).read_text())
    change(manifest)
    (tmp_path / "s" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataFormatError, match="entry missing or invalid") as info:
        EmbeddingStore.open(tmp_path / "s")
    assert info.value.field == field and info.value.file == str(tmp_path / "s" / MANIFEST)
