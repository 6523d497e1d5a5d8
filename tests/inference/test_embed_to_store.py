"""Embedding at scale: streamed into the store, resumable, deterministic across batch sizes and workers."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from astrofm.data.crossmatch import CrossMatchDataset
from astrofm.data.dataset import MMUDataset, write_dataset
from astrofm.downstream.store import EmbeddingStore
from astrofm.errors import ConfigError
from astrofm.inference import STATE_FILE, embed_to_store, samples_from_arrays
from tests.helpers.devices import CUDA
from tests.helpers.synthetic import make_samples


def source(root):
    return CrossMatchDataset.open({"ls": MMUDataset(root / "ls"), "desi": MMUDataset(root / "desi")}, how="outer")


def stored(path, modality):
    with EmbeddingStore.open(path) as store:
        ids = store.object_ids(modality)
        order = np.argsort(ids)
        return ids[order], np.array(store.vectors(modality))[order]


def test_every_object_and_modality_lands_in_the_store(tiny_model, galaxy_folder, tmp_path):
    root, ids = galaxy_folder
    out = embed_to_store(tiny_model, source(root), tmp_path / "s", batch_size=64, progress=False)
    image_ids, image_vectors = stored(out, "image")
    spec_ids, spec_vectors = stored(out, "spectrum")
    assert sorted(image_ids) == sorted(ids)
    assert len(spec_ids) == 400
    assert not np.allclose(spec_vectors[0], spec_vectors[1])
    np.testing.assert_allclose(np.linalg.norm(image_vectors, axis=1), 1, atol=1e-5)
    direct = tiny_model.embed([source(root).get(image_ids[5])])["image"][0].numpy()
    np.testing.assert_allclose(image_vectors[5], direct, atol=1e-5)


def test_same_vectors_whatever_batch_size_and_workers(tiny_model, galaxy_folder, tmp_path):
    root, _ = galaxy_folder
    a = embed_to_store(tiny_model, source(root), tmp_path / "a", batch_size=7, progress=False)
    b = embed_to_store(tiny_model, source(root), tmp_path / "b", batch_size=128, num_workers=2, progress=False)
    for modality in ("image", "spectrum"):
        ids_a, vec_a = stored(a, modality)
        ids_b, vec_b = stored(b, modality)
        np.testing.assert_array_equal(ids_a, ids_b)
        np.testing.assert_allclose(vec_a, vec_b, atol=1e-5)


@pytest.mark.parametrize(("device", "dtype"), [
    ("cpu", torch.bfloat16), pytest.param("cuda", torch.float32, marks=CUDA),
    pytest.param("cuda", torch.bfloat16, marks=CUDA)])
def test_a_model_on_another_device_or_dtype_fills_the_same_store(tiny_model, galaxy_folder, tmp_path, device, dtype):
    root, _ = galaxy_folder
    reference = embed_to_store(tiny_model, source(root), tmp_path / "fp32", batch_size=64, progress=False)
    moved = copy.deepcopy(tiny_model).to(device, dtype)
    out = embed_to_store(moved, source(root), tmp_path / "moved", batch_size=64, progress=False)
    for modality in ("image", "spectrum"):
        ids, vectors = stored(out, modality)
        reference_ids, expected = stored(reference, modality)
        np.testing.assert_array_equal(ids, reference_ids)
        assert vectors.dtype == np.float32
        if dtype == torch.float32:
            np.testing.assert_allclose(vectors, expected, atol=2e-3)  # TF32 convolutions on the GPU
        else:
            assert (vectors * expected).sum(axis=1).min() > 0.98  # cosine to the float32 vectors


def test_interrupted_run_resumes_where_it_stopped(tiny_model, galaxy_folder, tmp_path, monkeypatch):
    root, _ = galaxy_folder
    reference = embed_to_store(tiny_model, source(root), tmp_path / "ref", batch_size=50, progress=False)
    calls = {"n": 0}
    original = type(tiny_model).embed

    def flaky(self, batch, modalities=None):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, batch, modalities)

    monkeypatch.setattr(type(tiny_model), "embed", flaky)
    with pytest.raises(KeyboardInterrupt):
        embed_to_store(tiny_model, source(root), tmp_path / "run", batch_size=50, progress=False)
    with EmbeddingStore.open(tmp_path / "run") as store:
        assert store.count("image") == 200  # four batches committed
    monkeypatch.setattr(type(tiny_model), "embed", original)
    seen = []
    monkeypatch.setattr(type(tiny_model), "embed",
                        lambda self, batch, m=None: seen.append(len(batch)) or original(self, batch, m))
    embed_to_store(tiny_model, source(root), tmp_path / "run", batch_size=50, progress=False)
    assert sum(seen) == 400, "the resumed run embeds only what was left"
    for modality in ("image", "spectrum"):
        ids_ref, vec_ref = stored(reference, modality)
        ids_run, vec_run = stored(tmp_path / "run", modality)
        np.testing.assert_array_equal(ids_ref, ids_run)
        np.testing.assert_allclose(vec_ref, vec_run, atol=1e-6)
    assert '"finished": true' in (tmp_path / "run" / STATE_FILE).read_text()


def test_arrays_embed_like_samples(tiny_model):
    rng = np.random.default_rng(0)
    flux = rng.normal(size=(3, 64)).astype(np.float32)
    arrays = {"spectrum": {"flux": flux, "ivar": np.ones_like(flux), "lambda": np.tile(np.linspace(3600, 9800, 64),
                                                                                        (3, 1)).astype(np.float32),
                           "mask": np.zeros((3, 64), bool)}}
    samples = samples_from_arrays(arrays, ["a", "b", "c"])
    vectors = tiny_model.embed(samples)["spectrum"]
    assert vectors.shape == (3, 16)
    np.testing.assert_allclose(vectors[1].numpy(), tiny_model.embed([samples[1]])["spectrum"][0].numpy(), atol=1e-5)


def test_a_run_asking_for_another_modality_adds_it_to_a_finished_store(tiny_model, galaxy_folder, tmp_path):
    root, _ = galaxy_folder
    out = embed_to_store(tiny_model, source(root), tmp_path / "s", modalities=["image"], batch_size=64,
                         progress=False)
    with EmbeddingStore.open(out) as store:
        assert store.count("image") == 600 and "spectrum" not in store.modalities
    embed_to_store(tiny_model, source(root), out, batch_size=64, progress=False)
    reference = embed_to_store(tiny_model, source(root), tmp_path / "both", batch_size=64, progress=False)
    for modality in ("image", "spectrum"):
        ids_out, vectors = stored(out, modality)
        ids_ref, expected = stored(reference, modality)
        np.testing.assert_array_equal(ids_out, ids_ref)  # every id once: the image rows are not written twice
        np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_a_spectrum_without_a_good_pixel_is_not_stored(tiny_model, tmp_path):
    samples = make_samples(12, seed=5)
    samples[3]["spectrum"]["ivar"][:] = 0
    write_dataset(tmp_path / "desi", [{k: v for k, v in s.items() if k != "image"} for s in samples])
    out = embed_to_store(tiny_model, MMUDataset(tmp_path / "desi"), tmp_path / "s", progress=False)
    ids, vectors = stored(out, "spectrum")
    assert len(ids) == 11 and samples[3]["object_id"] not in ids.tolist()
    assert np.isfinite(vectors).all()


def test_resuming_a_store_in_another_precision_is_refused_and_leaves_it_intact(tiny_model, galaxy_folder, tmp_path):
    root, _ = galaxy_folder
    out = embed_to_store(tiny_model, source(root), tmp_path / "s", modalities=["image"], batch_size=64,
                         progress=False)
    with EmbeddingStore.open(out) as store:
        assert store.metadata["precision"] == "float32"
    before = stored(out, "image")
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(ConfigError) as error:
        embed_to_store(tiny_model, source(root), out, batch_size=64, progress=False)
    assert str(out) in str(error.value) and "float32" in str(error.value) and "bfloat16" in str(error.value)
    with pytest.raises(ConfigError, match="bfloat16"):
        embed_to_store(copy.deepcopy(tiny_model).to(torch.bfloat16), source(root), out, batch_size=64,
                       progress=False)
    with EmbeddingStore.open(out) as store:
        assert "spectrum" not in store.modalities
    after = stored(out, "image")
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    embed_to_store(tiny_model, source(root), out, batch_size=64, progress=False)  # same precision: resumes
    with EmbeddingStore.open(out) as store:
        assert store.count("spectrum") == 400
