"""Probes and their metrics on synthetic embeddings with known structure."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import f1_score

from astrofm.downstream.metrics import classification_metrics, precision_at_k, recall_at_k, redshift_metrics
from astrofm.downstream.probes import (
    KNNProbe,
    LinearProbe,
    MLPProbe,
    cross_validate,
    label_fraction_curve,
    make_probe,
)
from astrofm.errors import ConfigError, DataFormatError
from tests.downstream.synthetic import gaussian_classes, smooth_manifold


@pytest.fixture(scope="module")
def manifold():
    X, y = smooth_manifold(5000, seed=0)
    return X[:4000], y[:4000], X[4000:], y[4000:]


@pytest.fixture(scope="module")
def classes():
    X, y = gaussian_classes(3000, seed=0, spread=3.0)  # overlapping: about 80% reachable
    return X[:2400], y[:2400], X[2400:], y[2400:]


def test_redshift_metrics_match_their_definitions():
    z = np.array([0.1, 0.2, 0.3, 0.4, 1.0])
    pred = np.array([0.1, 0.21, 0.33, 0.4, 0.5])
    m = redshift_metrics(z, pred)
    delta = (pred - z) / (1 + z)
    assert m["nmad"] == pytest.approx(1.4826 * np.median(np.abs(delta - np.median(delta))))
    assert m["outlier_fraction"] == pytest.approx(0.2)  # only z = 1.0 -> 0.5 has |Δz|/(1+z) = 0.25 > 0.15
    assert m["mae"] == pytest.approx(np.mean(np.abs(pred - z)))
    assert m["r2"] == pytest.approx(1 - np.sum((pred - z) ** 2) / np.sum((z - z.mean()) ** 2))


def test_classification_and_ranking_metrics():
    m = classification_metrics(["a", "a", "b", "c"], ["a", "b", "b", "c"])
    assert m["accuracy"] == 0.75 and m["majority_accuracy"] == 0.5
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]] and m["labels"] == ["a", "b", "c"]
    assert m["macro_f1"] == pytest.approx(np.mean([2 / 3, 2 / 3, 1.0]))
    assert precision_at_k([True, False, True, False], [0.9, 0.8, 0.1, 0.0], 2) == pytest.approx(0.5)
    assert recall_at_k(np.array([[1, 2, 3], [4, 5, 6]]), np.array([[3, 2, 9], [4, 5, 6]])) == pytest.approx(5 / 6)


def test_knn_probe_defaults_and_smooth_target(manifold):
    X_train, y_train, X_test, y_test = manifold
    probe = KNNProbe()
    assert (probe.k, probe.weights, probe.standardize) == (64, "distance", True)  # AstroCLIP's protocol
    probe.fit(X_train, y_train)
    assert probe.score(X_test, y_test) >= 0.95
    metrics = probe.evaluate(y_test, probe.predict(X_test), redshift=True)
    assert metrics["outlier_fraction"] == 0.0 and metrics["nmad"] < 0.02


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_other_regression_probes_learn(manifold, kind):
    X_train, y_train, X_test, y_test = manifold
    probe = make_probe(kind, "regression").fit(X_train, y_train)
    assert probe.score(X_test, y_test) >= (0.9 if kind == "mlp" else 0.5)


@pytest.mark.parametrize("kind", ["knn", "linear", "mlp"])
def test_classifiers_beat_the_majority_class(classes, kind):
    X_train, y_train, X_test, y_test = classes
    probe = make_probe(kind, "classification").fit(X_train, y_train)
    metrics = probe.evaluate(y_test, probe.predict(X_test))
    assert metrics["accuracy"] >= metrics["majority_accuracy"] + 0.35
    assert metrics["macro_f1"] >= 0.6
    assert np.asarray(metrics["confusion_matrix"]).sum() == len(y_test)


def test_batch_size_one_and_determinism(classes):
    X_train, y_train, X_test, _ = classes
    for probe in (KNNProbe(task="classification"), LinearProbe(task="classification"),
                  MLPProbe(task="classification", seed=3)):
        probe.fit(X_train, y_train)
        full = probe.predict(X_test[:20])
        single = np.concatenate([probe.predict(X_test[i:i + 1]) for i in range(20)])
        np.testing.assert_array_equal(full, single)
        assert probe.predict(X_test[:1]).shape == (1,)
    a = MLPProbe(seed=7, max_epochs=20).fit(X_train, np.arange(len(X_train), dtype=float))
    b = clone(a).fit(X_train, np.arange(len(X_train), dtype=float))
    np.testing.assert_array_equal(a.predict(X_test), b.predict(X_test))


def test_probe_fits_on_one_sample():
    X, y = smooth_manifold(1)
    for kind in ("knn", "linear", "mlp"):
        assert make_probe(kind).fit(X, y).predict(X).shape == (1,)


def test_cross_validation_and_label_fraction_curve(manifold):
    X_train, y_train, X_test, y_test = manifold
    cv = cross_validate(KNNProbe(k=16), X_train[:1000], y_train[:1000], n_splits=4, redshift=True)
    assert len(cv["folds"]) == 4 and cv["mean"]["r2"] > 0.9 and cv["std"]["r2"] < 0.05
    assert set(cv["mean"]) == {"r2", "mae", "nmad", "outlier_fraction"}
    curve = label_fraction_curve(KNNProbe(), X_train, y_train, X_test, y_test, seeds=(0, 1, 2))
    assert [p["fraction"] for p in curve] == [0.01, 0.1, 0.25, 0.5, 1.0]
    assert [p["n_labels"] for p in curve] == [40, 400, 1000, 2000, 4000]
    means = [p["mean"]["r2"] for p in curve]
    assert means[-1] >= 0.95 and means[0] < means[1] < means[-1]
    assert curve[0]["std"]["r2"] > 0 and curve[-1]["std"]["r2"] == 0  # all labels: same subset every seed


def test_label_fraction_curve_keeps_every_class(classes):
    X_train, y_train, X_test, y_test = classes
    curve = label_fraction_curve(LinearProbe(task="classification"), X_train, y_train, X_test, y_test,
                                 fractions=(0.01,), seeds=(0, 1))
    assert curve[0]["n_labels"] == 24
    assert all(len(run["labels"]) == 5 for run in curve[0]["runs"])


def test_bad_probe_inputs():
    X, y = smooth_manifold(50)
    X_nan = X.copy()
    X_nan[3, 0] = np.nan
    with pytest.raises(DataFormatError, match="non-finite embedding"):
        KNNProbe().fit(X_nan, y)
    with pytest.raises(DataFormatError, match="one value per embedding"):
        KNNProbe().fit(X, y[:-1])
    probe = KNNProbe().fit(X, y)
    with pytest.raises(DataFormatError, match="dimension mismatch"):
        probe.predict(X[:, :10])
    with pytest.raises(DataFormatError, match="non-finite target"):
        KNNProbe().fit(X, np.where(np.arange(50) == 2, np.nan, y))
    with pytest.raises(ConfigError, match="task"):
        KNNProbe(task="ranking").fit(X, y)
    with pytest.raises(ConfigError, match="probe must be"):
        make_probe("forest")


def test_metrics_keep_test_classes_unseen_in_training():
    m = classification_metrics(["a", "b", "c", "c"], ["a", "b", "a", "b"], labels=["a", "b", "d"])
    assert m["labels"] == ["a", "b", "c", "d"]  # the training classes and every class of the test set
    assert m["confusion_matrix"] == [[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    assert m["macro_f1"] == pytest.approx(4 / 9)  # a and b: 2/3 each, c: 0; d is not in the test set
    rng = np.random.default_rng(0)
    probe = LinearProbe(task="classification").fit(rng.normal(size=(40, 4)), np.repeat(["a", "b"], 20))
    y_test = np.array(["a"] * 3 + ["b"] * 3 + ["c"] * 4)
    y_pred = probe.predict(rng.normal(size=(10, 4)))
    m = probe.evaluate(y_test, y_pred)
    assert m["labels"] == ["a", "b", "c"] and np.sum(m["confusion_matrix"]) == m["n"] == 10
    assert m["macro_f1"] == pytest.approx(f1_score(y_test, y_pred, average="macro", zero_division=0))


def test_recall_ignores_missing_neighbours():
    truth = np.array([[2, 1, 0, -1, -1]])  # 3 base rows for k = 5
    assert recall_at_k(np.array([[2, 1, 0, -1, -1]]), truth) == 1.0
    assert recall_at_k(np.array([[2, -1, -1, -1, -1]]), truth) == pytest.approx(1 / 3)
    assert recall_at_k(np.array([[-1, -1]]), np.array([[0, -1]])) == 0.0


@pytest.mark.parametrize("kind", ["knn", "linear", "mlp"])
def test_non_finite_class_labels_are_rejected(kind):
    X = np.random.default_rng(0).normal(size=(30, 4))
    y = (np.arange(30) % 2).astype(float)
    y[3] = np.nan
    with pytest.raises(DataFormatError, match="field 'y': non-finite target in row 3"):
        make_probe(kind, "classification").fit(X, y)
    with pytest.raises(DataFormatError, match="field 'y_train': non-finite target in row 3"):
        label_fraction_curve(make_probe(kind, "classification"), X, y, X, np.zeros(30), fractions=(1.0,))


def test_label_fraction_curve_reports_the_labels_fitted():
    X, y = gaussian_classes(200, dim=4, n_classes=10, seed=1)
    curve = label_fraction_curve(KNNProbe("classification", k=5), X, y, X, y, fractions=(0.01, 0.1, 1.0),
                                 seeds=(0, 1))
    assert len(np.unique(y)) == 10
    assert [p["n_labels"] for p in curve] == [10, 20, 200]  # 1%: 2 asked for, one of every class fitted
