"""Exact search (against brute force, chunk and order invariance) and store-level queries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astrofm.downstream.search import ExactIndex, exact_search, search_store
from astrofm.errors import ConfigError, DataFormatError
from tests.downstream.synthetic import make_store, unit


def _brute(queries: np.ndarray, base: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    q, b = queries.astype(np.float64), base.astype(np.float64)
    if metric == "cosine":
        d = 1 - unit(q).astype(np.float64) @ unit(b).astype(np.float64).T
    else:
        d = np.sqrt(((q[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, 1), idx


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(60, 24)).astype(np.float32), rng.normal(size=(3000, 24)).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_exact_search_matches_brute_force(data, metric):
    queries, base = data
    distances, indices = exact_search(queries, base, 7, metric=metric)
    ref_d, ref_i = _brute(queries, base, 7, metric)
    np.testing.assert_array_equal(indices, ref_i)
    np.testing.assert_allclose(distances, ref_d, atol=2e-5)
    assert distances.shape == (60, 7) and (np.diff(distances, axis=1) >= 0).all()


@pytest.mark.parametrize(("batch_size", "chunk_size"), [(1, 257), (7, 113), (60, 3000), (1000, 1)])
def test_chunking_does_not_change_results(data, batch_size, chunk_size):
    queries, base = data
    reference_d, reference_i = exact_search(queries, base, 5)
    distances, indices = exact_search(queries, base, 5, batch_size=batch_size, chunk_size=chunk_size)
    np.testing.assert_array_equal(indices, reference_i)
    np.testing.assert_allclose(distances, reference_d, atol=1e-6)


def test_order_of_the_base_does_not_matter(data):
    queries, base = data
    perm = np.random.default_rng(1).permutation(len(base))
    _, indices = exact_search(queries, base, 5, metric="l2")
    _, shuffled = exact_search(queries, base[perm], 5, metric="l2", chunk_size=500)
    np.testing.assert_array_equal(perm[shuffled], indices)


def test_torch_inputs_memmaps_and_small_bases(data, tmp_path):
    queries, base = data
    reference = exact_search(queries, base, 4)
    from_torch = exact_search(torch.from_numpy(queries), torch.from_numpy(base), 4, device="cpu")
    np.testing.assert_array_equal(from_torch[1], reference[1])
    np.save(tmp_path / "base.npy", base)
    mapped = np.load(tmp_path / "base.npy", mmap_mode="r")
    np.testing.assert_array_equal(exact_search(queries, mapped, 4, chunk_size=256)[1], reference[1])
    distances, indices = exact_search(queries[:2], base[:3], 5)  # fewer base rows than k
    assert (indices[:, 3:] == -1).all() and np.isinf(distances[:, 3:]).all()
    assert len(ExactIndex(base)) == 3000


def test_search_inputs_are_checked(data):
    queries, base = data
    with pytest.raises(DataFormatError, match="differ in dimension"):
        exact_search(queries[:, :10], base, 3)
    with pytest.raises(ConfigError, match="metric"):
        exact_search(queries, base, 3, metric="manhattan")
    with pytest.raises(ConfigError, match="k must be positive"):
        exact_search(queries, base, 0)


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(2)
    image = rng.normal(size=(400, 16))
    spectrum = image[:300, :8] + 0.05 * rng.normal(size=(300, 8))  # the spectrum view of the first 300 objects
    return make_store(tmp_path / "s", {
        "image": (np.arange(400), image),
        "spectrum": (np.arange(300)[::-1], spectrum[::-1]),
        "photometry": (np.arange(300), image[:300, :8] + 0.05 * rng.normal(size=(300, 8))),
    })


def test_in_modal_search_by_id_skips_the_object_itself(store):
    result = search_store(store, "image", object_ids=["5", "17"], k=6)
    assert result.ids.shape == (2, 6) and "5" not in result.ids[0] and "17" not in result.ids[1]
    vectors = store.vectors("image")
    ref_d, ref_i = _brute(vectors[[5, 17]], vectors, 7, "cosine")
    np.testing.assert_array_equal(result.rows, ref_i[:, 1:])
    np.testing.assert_allclose(result.distances, ref_d[:, 1:], atol=2e-5)
    with_self = search_store(store, "image", object_ids=["5"], k=3, exclude_self=False)
    assert with_self.ids[0, 0] == "5" and with_self.distances[0, 0] == pytest.approx(0, abs=1e-6)
    table = result.to_table()
    assert len(table) == 12 and table["rank"].tolist()[:6] == [1, 2, 3, 4, 5, 6]


def test_cross_modal_and_vector_queries(store):
    result = search_store(store, "spectrum", object_ids=["10", "250"], target_modality="photometry", k=3)
    assert result.ids[:, 0].tolist() == ["10", "250"]  # the same object's other view is nearest
    vector = store.get("photometry", ["42"])
    by_vector = search_store(store, "photometry", vectors=vector, k=2)
    assert by_vector.ids[0, 0] == "42" and by_vector.query_ids.tolist() == [""]
    with pytest.raises(DataFormatError, match="differ in dimension"):
        search_store(store, "image", object_ids=["1"], target_modality="spectrum")
    with pytest.raises(DataFormatError, match="not in store") as info:
        search_store(store, "spectrum", object_ids=["399"], k=2)
    assert info.value.object_id == "399"
    with pytest.raises(ConfigError, match="either"):
        search_store(store, "image", k=2)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_equal_distances_are_ordered_by_row_whatever_the_chunking(metric):
    rng = np.random.default_rng(0)
    query = rng.normal(size=(1, 8)).astype(np.float32)
    base = np.vstack([rng.normal(size=(5, 8)), np.repeat(query, 6, 0), rng.normal(size=(5, 8))]).astype(np.float32)
    for chunk_size in (16384, 7, 3, 1):
        distances, indices = exact_search(query, base, 4, metric=metric, chunk_size=chunk_size)
        assert indices[0].tolist() == [5, 6, 7, 8]  # 6 copies of the query at rows 5-10: the first 4
        assert distances[0].tolist() == [0.0] * 4
