"""Anomaly scores find planted outliers; active learning with an oracle raises precision."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from astrofm.downstream.active import ActiveLearner, simulate_oracle
from astrofm.downstream.anomaly import METHODS, AnomalyDetector, anomaly_scores
from astrofm.downstream.metrics import precision_at_k
from astrofm.errors import ConfigError, DataFormatError
from tests.downstream.synthetic import planted_outliers


@pytest.fixture(scope="module")
def planted():
    return planted_outliers(seed=0)


@pytest.mark.parametrize("method", METHODS)
def test_scores_find_planted_outliers(planted, method):
    X, _, outlier = planted
    scores = anomaly_scores(X, method)
    assert scores.min() == 0.0 and scores.max() == 1.0  # the common scale
    assert precision_at_k(outlier, scores, outlier.sum()) >= (0.7 if method == "iforest" else 0.95)
    assert np.median(scores[outlier]) > np.quantile(scores[~outlier], 0.95)


def test_new_objects_are_scored_against_the_reference(planted):
    X, _, outlier = planted
    for method in METHODS:
        detector = AnomalyDetector(method, seed=1).fit(X[~outlier])
        new = detector.score_samples(X[outlier][:10])
        normal = detector.score_samples(X[~outlier][:200])
        assert new.min() > np.median(normal) and ((new >= 0) & (new <= 1)).all()


def test_bad_anomaly_inputs(planted):
    X, _, _ = planted
    bad = X.copy()
    bad[5, 1] = np.inf
    with pytest.raises(DataFormatError, match="non-finite"):
        anomaly_scores(bad)
    with pytest.raises(ConfigError, match="method"):
        AnomalyDetector("svm")
    with pytest.raises(ConfigError, match="fit"):
        AnomalyDetector().score_samples(X)
    with pytest.raises(DataFormatError, match="dimension mismatch"):
        AnomalyDetector("knn").fit(X).score_samples(X[:, :5])


@pytest.mark.parametrize("method", ["lof", "knn"])
def test_active_learning_with_an_oracle_raises_precision(planted, method):
    X, interesting, _ = planted
    learner = ActiveLearner(X, np.arange(len(X)), anomaly_scores(X, method))
    curve = simulate_oracle(learner, interesting, rounds=5, per_round=20)
    precision = [p["precision"] for p in curve]
    assert [p["n_labels"] for p in curve] == [0, 20, 40, 60, 80, 100]
    assert 0.5 <= precision[0] < 0.7  # no labels: the artefacts outrank a third of the interesting objects
    assert precision[-1] >= 0.8  # after 100 oracle labels
    assert precision[-1] >= precision[0] + 0.25 and precision[-1] >= max(precision[:3])


def test_active_learning_api_and_state(planted, tmp_path):
    X, _, _ = planted
    ids = np.array([f"g{i}" for i in range(len(X))])
    scores = anomaly_scores(X, "knn")
    learner = ActiveLearner(X, ids, scores)
    np.testing.assert_array_equal(learner.scores(), scores)  # no labels: the anomaly ranking
    top = learner.suggest(10)
    assert top.tolist() == ids[np.argsort(-scores, kind="stable")[:10]].tolist()
    learner.label(top[:5], [0, 0, 5, 1, 2])
    assert not set(learner.suggest(10)) & set(top[:5])
    table = learner.rank()
    assert table["rank"][0] == 1 and (np.diff(table["score"]) <= 0).all()
    labelled = table[np.isfinite(table["label"])]
    assert len(labelled) == 5 and (labelled["d0"] == 0).all()
    np.testing.assert_array_equal(labelled["relevance"], labelled["label"])
    boring = table[table["object_id"] == top[0]][0]
    assert boring["score"] == pytest.approx(boring["anomaly"] * 0.1)  # label 0, d0 = 0: anomaly · f_u(0)

    learner.save(tmp_path / "state.json")
    resumed = ActiveLearner.load(tmp_path / "state.json", X, ids, scores)
    assert resumed.labels == learner.labels
    np.testing.assert_array_equal(resumed.scores(), learner.scores())
    with pytest.raises(DataFormatError, match="differ from those the labels were given on"):
        ActiveLearner.load(tmp_path / "state.json", X, ids, scores * 0.5)
    with pytest.raises(DataFormatError, match="out of range") as info:
        learner.label(["g1"], [6])
    assert info.value.object_id == "g1"
    with pytest.raises(DataFormatError, match="not among the candidates"):
        learner.label(["nope"], [3])
    with pytest.raises(DataFormatError, match="one per object"):
        ActiveLearner(X, ids, scores[:-1])


def test_lof_of_a_small_set_caps_its_neighbours(caplog):
    X = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    X[-1] += 20  # 20 sigma off
    with caplog.at_level(logging.WARNING, logger="astrofm.downstream.anomaly"):
        scores = anomaly_scores(X, "lof")
    assert scores[-1] == 1.0 and np.sort(scores)[-2] < 0.05
    assert "LOF of 50 objects: n_neighbors capped from 50 to 25" in caplog.text
