"""Recording figures: a re-measurement on another machine keeps the figure it replaces."""

from __future__ import annotations

import json

import pytest

from benchmarks import results as R


@pytest.fixture
def results_files(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "RESULTS_JSON", tmp_path / "results.json")
    monkeypatch.setattr(R, "RESULTS_MD", tmp_path / "RESULTS.md")
    return tmp_path


def test_machine_names_the_cpu_capability_and_bf16() -> None:
    description = R.machine()
    assert "bf16" in description and "cores" in description


def test_a_figure_from_another_machine_is_kept_beside_the_new_one(results_files, monkeypatch) -> None:
    monkeypatch.setattr(R, "machine", lambda: "machine A")
    R.record("x.speed", 2.5, target=">= 1.5", unit="ratio", baseline="b", command="cmd a", notes="on A")
    monkeypatch.setattr(R, "machine", lambda: "machine B")
    entry = R.record("x.speed", 1.2, target=">= 1.5", unit="ratio", baseline="b", command="cmd b", notes="on B")
    assert entry["met"] is False
    assert entry["previous_machine"]["value"] == 2.5 and entry["previous_machine"]["met"] is True
    assert entry["previous_machine"]["machine"] == "machine A"
    assert "previous_machine" not in entry["previous_machine"]
    # a re-measurement on the same machine keeps the other machine's figure
    again = R.record("x.speed", 1.3, target=">= 1.5", unit="ratio", baseline="b", command="cmd b", notes="on B")
    assert again["previous_machine"]["value"] == 2.5
    stored = json.loads((results_files / "results.json").read_text())["x.speed"]
    assert stored["value"] == 1.3 and stored["previous_machine"]["machine"] == "machine A"
    markdown = (results_files / "RESULTS.md").read_text()
    assert "before: 2.5 (met) on machine A" in markdown and "`cmd a`" in markdown


def test_a_first_figure_has_no_previous_machine(results_files) -> None:
    entry = R.record("x.new", 0.7, target=">= 0.5", unit="R²", baseline="b", command="cmd")
    assert entry["met"] is True and "previous_machine" not in entry
