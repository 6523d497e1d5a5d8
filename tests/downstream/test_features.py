"""Sparse autoencoder: recovers known sparse factors; reports, correlations, steering, saving."""

from __future__ import annotations

import numpy as np
import pytest

from astrofm.downstream.features import SparseAutoencoder, correlate_features, top_activating
from astrofm.downstream.search import exact_search
from astrofm.errors import ConfigError, DataFormatError
from tests.downstream.synthetic import sparse_factors


@pytest.fixture(scope="module")
def trained():
    X, factors, codes = sparse_factors(6000, seed=0)
    sae = SparseAutoencoder(128, k=4, epochs=15, seed=0).fit(X)
    return X, factors, codes, sae


def _matches(factors: np.ndarray, dictionary: np.ndarray) -> np.ndarray:
    """For each true factor, the index of the best-matching feature and its cosine."""
    cos = factors @ dictionary.T
    return cos.argmax(axis=1), cos.max(axis=1)


def test_sae_recovers_the_sparse_factors(trained):
    X, factors, _, sae = trained
    assert sae.dictionary.shape == (128, 48)
    np.testing.assert_allclose(np.linalg.norm(sae.dictionary, axis=1), 1.0, atol=1e-5)
    _, cosine = _matches(factors, sae.dictionary)
    assert (cosine >= 0.9).mean() >= 0.8  # most factors found
    assert sae.score(X) >= 0.9
    activations = sae.transform(X)
    assert ((activations > 0).sum(axis=1) <= 4).all()  # top-k sparsity


def test_feature_report_correlations_and_top_objects(trained):
    X, factors, codes, sae = trained
    feature, cosine = _matches(factors, sae.dictionary)
    report = sae.feature_report(X)
    assert len(report) == 128 and set(report.colnames) >= {"frequency", "mean_activation", "explained_variance"}
    assert report["frequency"].sum() == pytest.approx(4.0, abs=0.05)  # k active features per object
    matched = feature[cosine >= 0.9]
    unused = np.setdiff1d(np.arange(128), feature)
    assert np.median(report["explained_variance"][matched]) > 5 * np.median(report["explained_variance"][unused])

    f = int(np.flatnonzero(cosine >= 0.9)[0])  # a well-recovered factor stands in for a catalog column
    activations = sae.transform(X)
    table = correlate_features(activations, {"line_strength": codes[:, f], "noise": np.random.default_rng(0)
                                             .normal(size=len(X))})
    best = table[0]
    assert (best["feature"], best["column"]) == (feature[f], "line_strength") and best["spearman_rho"] > 0.8
    assert abs(table[table["column"] == "noise"]["spearman_rho"]).max() < 0.1
    rows = top_activating(activations, int(feature[f]), 10)
    assert (np.diff(activations[rows, feature[f]]) <= 0).all() and (codes[rows, f] > 0).all()


def test_transform_is_batch_invariant_and_saved_model_is_identical(trained, tmp_path):
    X, _, _, sae = trained
    one, many = sae.transform(X[:500], batch_size=1), sae.transform(X[:500], batch_size=500)
    np.testing.assert_array_equal(one > 0, many > 0)  # the same features fire
    np.testing.assert_allclose(one, many, rtol=1e-5, atol=1e-6)  # BLAS kernels differ only in the last bits
    sae.save(tmp_path / "sae")
    loaded = SparseAutoencoder.load(tmp_path / "sae")
    np.testing.assert_array_equal(loaded.transform(X[:100]), sae.transform(X[:100]))
    assert loaded.k == 4 and loaded.scale_ == sae.scale_
    with pytest.raises(DataFormatError, match="cannot read"):
        SparseAutoencoder.load(tmp_path / "nothing")


def test_steering_adds_and_removes_a_feature(trained):
    X, factors, codes, sae = trained
    feature, cosine = _matches(factors, sae.dictionary)
    true = int(np.argmax(cosine))
    f = int(feature[true])
    without, with_f = np.flatnonzero(codes[:, true] == 0)[:50], np.flatnonzero(codes[:, true] > 0)[:50]
    added = sae.steer(X[without], f, delta=3.0)
    np.testing.assert_allclose(added - X[without], np.tile(3.0 * sae.scale_ * sae.dictionary[f], (50, 1)), atol=1e-5)
    assert sae.transform(added)[:, f].mean() > sae.transform(X[without])[:, f].mean() + 1.5

    def share_with_factor(queries: np.ndarray) -> float:  # neighbours (other objects) carrying the factor
        _, rows = exact_search(queries, X, 11, metric="l2")
        return float((codes[rows[:, 1:], true] > 0).mean())

    assert share_with_factor(added) > share_with_factor(X[without]) + 0.25  # base rate 3/64
    removed = sae.steer(X[with_f], f, remove=True)
    assert sae.transform(removed)[:, f].mean() < 0.3 * sae.transform(X[with_f])[:, f].mean()
    assert share_with_factor(removed) < share_with_factor(X[with_f]) - 0.25
    unit = sae.steer(X[without], f, delta=3.0, renormalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ConfigError, match="either delta or remove"):
        sae.steer(X[:2], f)


def test_l1_sparsity_and_bad_inputs():
    X, _, _ = sparse_factors(600, seed=1)
    sae = SparseAutoencoder(64, sparsity="l1", l1=0.05, epochs=5).fit(X)
    assert (sae.transform(X) == 0).mean() > 0.3
    with pytest.raises(ConfigError, match="sparsity"):
        SparseAutoencoder(sparsity="dropout")
    with pytest.raises(ConfigError, match="fit"):
        SparseAutoencoder().transform(X)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataFormatError, match="non-finite"):
        SparseAutoencoder(epochs=1).fit(bad)
    with pytest.raises(DataFormatError, match="dimension mismatch"):
        sae.transform(X[:, :10])


@pytest.mark.parametrize("n_features", [0, -5])
def test_dictionary_size_must_be_positive(n_features):
    with pytest.raises(ConfigError, match="n_features must be positive"):
        SparseAutoencoder(n_features)
    assert SparseAutoencoder().dictionary_size(16) == 64
