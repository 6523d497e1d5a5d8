"""faiss ANN indexes: recall against exact search, saving with checksum, stale-store detection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from astrofm.downstream.ann import INDEX_FILE, META_FILE, AnnIndex, choose_params
from astrofm.downstream.metrics import recall_at_k
from astrofm.downstream.search import exact_search, search_store
from astrofm.errors import ConfigError, DataFormatError
from benchmarks.ann import clustered
from tests.downstream.synthetic import make_store


@pytest.fixture(scope="module")
def vectors():
    """50k clustered unit vectors (the benchmark's generator at CI size) and 300 held-out queries."""
    base = next(clustered(50_000, 64, 50, 0, draws=1, chunk=50_000))
    queries = next(clustered(300, 64, 50, 0, draws=2, chunk=300))
    return base, queries, exact_search(queries, base, 10)[1]


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_recall_at_10_on_50k(vectors, kind):
    base, queries, truth = vectors
    index = AnnIndex.build(base, kind=kind)
    distances, found = index.search(queries, 10)
    assert recall_at_k(found, truth) >= 0.95
    exact_d = 1 - np.sum(queries[:, None, :] * base[found], axis=-1)
    np.testing.assert_allclose(distances, exact_d, atol=1e-4)  # cosine distances, like exact search


def test_parameters_follow_n_and_d():
    assert choose_params("auto", 5_000, 64)["kind"] == "flat"
    assert choose_params("auto", 100_000, 256)["kind"] == "hnsw"
    assert choose_params("auto", 1_000_000, 256)["kind"] == "ivfpq"
    big = choose_params("ivfpq", 1_000_000, 256)
    assert (big["nlist"], big["m"], big["nbits"]) == (4096, 32, 8)
    small = choose_params("ivfpq", 2_000, 20)
    assert small["nlist"] * 39 <= 2_000 and 20 % small["m"] == 0 and small["nbits"] <= 5
    assert choose_params("hnsw", 1000, 32)["M"] == 16


def test_save_load_checksum_and_stale_store(tmp_path):
    rng = np.random.default_rng(0)
    store = make_store(tmp_path / "s", {"image": (np.arange(3000), rng.normal(size=(3000, 32)))})
    index = AnnIndex.build(store.vectors("image"), kind="ivfpq", store=store, modality="image")
    index.save(tmp_path / "idx")
    loaded = AnnIndex.load(tmp_path / "idx", store=store)
    queries = store.vectors("image")[:20]
    for a, b in zip(index.search(queries, 5), loaded.search(queries, 5)):
        np.testing.assert_array_equal(a, b)
    assert loaded.params == index.params and loaded.source["fingerprint"] == store.fingerprint("image")
    with pytest.raises(ConfigError, match="re-ranks"):
        AnnIndex.load(tmp_path / "idx").search(queries, 5)  # IVF-PQ refinement needs the base vectors
    result = search_store(store, "image", object_ids=["7"], k=3, index=loaded)
    assert "7" not in result.ids[0] and (result.rows >= 0).all()

    meta = json.loads((tmp_path / "idx" / META_FILE).read_text())
    data = (tmp_path / "idx" / INDEX_FILE).read_bytes()
    (tmp_path / "idx" / INDEX_FILE).write_bytes(data[:-10] + bytes(10))
    with pytest.raises(DataFormatError, match="checksum"):
        AnnIndex.load(tmp_path / "idx", store=store)
    (tmp_path / "idx" / INDEX_FILE).write_bytes(data)
    store.append("image", ["new"], np.eye(32, dtype=np.float32)[:1])
    with pytest.raises(DataFormatError, match="store changed since the index was built") as info:
        AnnIndex.load(tmp_path / "idx", store=store)
    assert info.value.expected["fingerprint"] == meta["source"]["fingerprint"]
    with pytest.raises(DataFormatError, match="not a saved ANN index"):
        AnnIndex.load(tmp_path / "nothing")


def test_hnsw_flat_and_bad_options(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.normal(size=(2000, 16)).astype(np.float32)
    flat = AnnIndex.build(base, kind="auto", metric="l2")
    assert flat.kind == "flat"
    exact = exact_search(base[:10], base, 4, metric="l2")
    found = flat.search(base[:10], 4)
    np.testing.assert_array_equal(found[1], exact[1])
    np.testing.assert_allclose(found[0], exact[0], atol=1e-4)
    hnsw = AnnIndex.build(base, kind="hnsw", params={"ef_search": 128})
    hnsw.save(tmp_path / "h")
    assert AnnIndex.load(tmp_path / "h").search(base[:3], 1)[1][:, 0].tolist() == [0, 1, 2]  # no store needed
    with pytest.raises(ConfigError, match="search parameters"):
        hnsw.configure(nprobe=3)
    with pytest.raises(ConfigError, match="kind"):
        AnnIndex.build(base, kind="lsh")
    with pytest.raises(DataFormatError, match="dimension mismatch"):
        hnsw.search(base[:2, :8], 3)


def test_ivfpq_needs_a_training_vector_per_centroid():
    X = np.random.default_rng(0).normal(size=(100, 16)).astype(np.float32)
    with pytest.raises(ConfigError, match="nlist=1 and nbits=1 needs at least 2 vectors to train, not 1"):
        AnnIndex.build(X[:1], kind="ivfpq")
    with pytest.raises(ConfigError, match="nbits=8 needs at least 256 vectors to train, not 100"):
        AnnIndex.build(X, kind="ivfpq", params={"nbits": 8})
    _, rows = AnnIndex.build(X[:2], kind="ivfpq").search(X[:2], 1)
    assert rows[:, 0].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda meta: meta.pop("sha256"), "sha256"),
        (lambda meta: meta.update(n="2000"), "n"),
        (lambda meta: meta["params"].pop("ef_search"), "params"),
        (lambda meta: meta.update(source=[1]), "source"),
        (lambda meta: [meta], "format"),
    ],
)
def test_bad_index_metadata_names_the_field(tmp_path, change, field):
    base = np.random.default_rng(2).normal(size=(200, 8)).astype(np.float32)
    AnnIndex.build(base, kind="hnsw").save(tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / META_FILE).read_text())
    changed = change(meta)
    (tmp_path / "idx" / META_FILE).write_text(json.dumps(changed if isinstance(changed, list) else meta))
    with pytest.raises(DataFormatError) as info:
        AnnIndex.load(tmp_path / "idx")
    assert info.value.field == field and info.value.file == str(tmp_path / "idx" / META_FILE)
