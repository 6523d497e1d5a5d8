"""Catalog and label files read by the downstream commands: ids, blanks, integer classes, error locations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from astrofm.cli import main
from tests.downstream.synthetic import make_store


@pytest.fixture
def padded_store(tmp_path):
    """40 objects whose ids look like numbers ("000000" ...)."""
    ids = np.array([f"{i:06d}" for i in range(40)])
    make_store(tmp_path / "s.store", {"image": (ids, np.random.default_rng(0).normal(size=(40, 8)))})
    return tmp_path / "s.store", ids


def test_anomaly_labels_file_round_trips_numeric_looking_ids(padded_store, tmp_path):
    store, ids = padded_store
    first = tmp_path / "first"
    assert main(["anomaly", "--store", str(store), "--top", "5", "--out", str(first)]) == 0
    lines = (first / "to_label.csv").read_text().splitlines()
    suggested = [line.split(",")[0] for line in lines[1:]]
    assert lines[0] == "object_id,score" and len(suggested) == 5 and set(suggested) <= set(ids)
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join([lines[0], *(f"{line}{i % 6}" for i, line in enumerate(lines[1:]))]) + "\n")
    again = tmp_path / "again"
    assert main(["anomaly", "--store", str(store), "--labels", str(labels), "--out", str(again)]) == 0
    state = json.loads((again / "state.json").read_text())
    assert state["labels"] == {oid: float(i % 6) for i, oid in enumerate(suggested)}


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("000003,7", "object_id=000003: field 'score': relevance label out of range"),
        ("x000003,2", "object_id=x000003: field 'object_id': labelled object not among the candidates"),
        ("000003,high", "field 'score': relevance scores must be numbers 0-5"),
    ],
)
def test_anomaly_labels_errors_name_the_file(padded_store, tmp_path, capsys, rows, problem):
    store, _ = padded_store
    labels = tmp_path / "labels.csv"
    labels.write_text(f"object_id,score\n{rows}\n")
    assert main(["anomaly", "--store", str(store), "--labels", str(labels), "--out", str(tmp_path / "o")]) == 1
    assert f"{labels}: {problem}" in capsys.readouterr().err


def test_probe_integer_classes_with_a_blank_cell(tmp_path):
    n = 60
    classes = np.arange(n) % 3
    X = np.random.default_rng(0).normal(size=(n, 8)) + 3.0 * classes[:, None]
    make_store(tmp_path / "s.store", {"image": (np.array([f"obj{i}" for i in range(n)]), X)})
    rows = [f"obj{i},{c}" for i, c in enumerate(classes)]
    rows[4] = "obj4,"  # not classified yet
    (tmp_path / "cat.csv").write_text("\n".join(["object_id,morph", *rows]) + "\n")
    for task in ("auto", "classification"):
        out = tmp_path / task
        assert main(["probe", "--store", str(tmp_path / "s.store"), "--catalog", str(tmp_path / "cat.csv"),
                     "--target", "morph", "--probe", "linear", "--task", task, "--out", str(out)]) == 0
        report = json.loads((out / "metrics.json").read_text())
        assert report["task"] == "classification"
        assert report["n_train"] + report["n_test"] == n - 1  # the blank row is skipped
        assert report["test"]["labels"] == ["0", "1", "2"]
        assert np.sum(report["test"]["confusion_matrix"]) == report["n_test"] == 12
