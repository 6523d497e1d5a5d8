"""``astrofm demo`` end to end on the tiny universe, with a model trained from scratch (``--train``).

One run (about a minute on 2 cores) serves every test of the module: its metrics beat the baselines,
its report inlines every figure and renders in headless Chromium (where installed), a rerun skips the
finished steps, a killed run resumes, and bad options fail with a clear message.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from astrofm.cli import main

PROBE_TASKS = ("galaxy_z", "galaxy_log_mstar", "star_class")


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["demo", *args])
    return code, out.getvalue(), err.getvalue()


def markers(root: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((root / "steps").glob("*.json"))}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One demo run shared by the tests (and by pytest-xdist workers: the first runs it, the others resume
    the finished run, which skips every step). Tests that change a run work on a copy."""
    from filelock import FileLock

    # under pytest-xdist the workers' base folders share a parent that belongs to this session only
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "astrofm-demo-tiny"
    args = ("--root", str(root), "--preset", "tiny", "--train", "--no-progress", "--workers", "1")
    with FileLock(str(shared / "astrofm-demo-tiny.lock")):
        code, out, err = run_cli(*args)
    assert code == 0, err
    return {"root": root, "args": args, "stdout": out, "metrics": json.loads((root / "metrics.json").read_text()),
            "lock": shared / "astrofm-demo-tiny.lock"}


def test_every_step_ran_and_wrote_its_outputs(demo: dict[str, Any]) -> None:
    root, metrics = demo["root"], demo["metrics"]
    assert [name.split("-", 1)[1] for name in markers(root)] == [
        "simulate", "model", "embed", "probes", "search", "anomalies", "maps", "ar"]
    assert metrics["options"]["preset"] == "tiny" and metrics["options"]["train"] is True
    assert (root / "universe" / "simulation.json").exists()
    assert (root / "model" / "model.safetensors").exists()
    assert metrics["steps"]["model"]["training"]["steps"] > 0
    sample = metrics["steps"]["embed"]["sample"]
    assert sample["galaxies"]["train"] + sample["galaxies"]["test"] > 850  # the tiny universe's train + test
    assert metrics["steps"]["embed"]["vectors"]["image"] == sample["galaxies"]["train"] + sample["galaxies"]["test"]
    assert set(metrics["steps"]["embed"]["vectors"]) == {"image", "spectrum", "lightcurve", "tabular"}


def test_probes_beat_random_init_and_pca(demo: dict[str, Any]) -> None:
    tasks = demo["metrics"]["steps"]["probes"]["tasks"]
    assert set(tasks) == set(PROBE_TASKS)
    for name, task in tasks.items():
        assert task["model"], name
        best = max(task["model"].values())
        assert best > max(task["random_init"].values()), (name, task)  # each task: the model's best input wins
        assert best > max(task["pca"].values()), (name, task)
        for source, score in task["model"].items():
            assert score > task["pca"][source], (name, source, task)
            # per input against random init: ~100 test galaxies (~60 with spectra) make R² noisy by a few 0.01,
            # and at this scale the trained image embedding wins redshift by only about that much
            assert score > task["random_init"][source] - 0.05, (name, source, task)
        assert task["colours"] is not None  # measured and reported (a 300-step model need not beat it)
    assert set(tasks["galaxy_z"]["model"]) == {"image", "spectrum"}
    assert set(tasks["star_class"]["model"]) == {"lightcurve", "all"}


def test_search_anomalies_and_ar_are_measured(demo: dict[str, Any]) -> None:
    steps = demo["metrics"]["steps"]
    search = steps["search"]
    assert search["model"]["recall_at_10"] > max(search["random_init"]["recall_at_10"],
                                                 search["chance_recall_at_10"])
    for result in steps["anomalies"]["populations"].values():
        assert 0 <= result["precision_before"] <= 1 and 0 <= result["precision_after"] <= 1
        assert result["labels"] > 0 and result["top_n"] == result["anomalies"] > 0
    ar = steps["ar"]
    assert ar["training"]["final_loss"] < ar["training"]["first_loss"]
    assert ar["median_mse"] > 0 and ar["median_mse_mean_spectrum"] > 0


def test_summary_table_is_printed(demo: dict[str, Any]) -> None:
    header = demo["stdout"].splitlines()[0]
    for column in ("task", "model", "random-init", "PCA", "colours-only", "other reference"):
        assert column in header
    assert "galaxies: redshift" in demo["stdout"] and "report.html" in demo["stdout"]
    summary = demo["metrics"]["summary"]
    assert len(summary) >= 6
    for row in summary:  # a column holds only what its header names: chance and other references apart
        assert not str(row["PCA"]).startswith("chance") and not str(row["random-init"]).startswith("mean")
    search = next(row for row in summary if row["task"] == "image -> spectrum search")
    assert search["other reference"].startswith("chance ")


def test_report_embeds_the_metrics_as_json(demo: dict[str, Any]) -> None:
    report = (demo["root"] / "report.html").read_text()
    text = re.search(r"<script type='application/json' id='metrics'>(.*?)</script>", report, re.S).group(1)
    assert json.loads(text)["summary"] == demo["metrics"]["summary"]


def test_report_inlines_every_png(demo: dict[str, Any]) -> None:
    root = demo["root"]
    report = (root / "report.html").read_text()
    pngs = sorted(root.glob("*.png"))
    assert len(pngs) >= 10
    assert sorted(demo["metrics"]["figures"]) == sorted(p.name for p in pngs)
    for png in pngs:
        assert base64.b64encode(png.read_bytes()).decode() in report, png.name
    sources = re.findall(r'<img[^>]* src="([^"]*)"', report)
    assert len(sources) == len(pngs)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in report and "https://" not in report  # nothing to fetch


def test_report_renders_in_headless_chromium(demo: dict[str, Any]) -> None:
    from astrofm.demo.browser import check_report, find_chromium

    if find_chromium() is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    result = check_report(demo["root"] / "report.html")
    assert result["ok"], result
    assert result["images"] == len(list(demo["root"].glob("*.png")))


def test_rerun_skips_finished_steps(demo: dict[str, Any]) -> None:
    from filelock import FileLock

    root = demo["root"]
    before = markers(root)
    start = time.perf_counter()
    with FileLock(str(demo["lock"])):
        code, _, err = run_cli(*demo["args"])
    assert code == 0, err
    assert markers(root) == before  # no step ran again
    assert time.perf_counter() - start < 30
    assert json.loads((root / "metrics.json").read_text())["steps"] == demo["metrics"]["steps"]


def test_killed_run_resumes_from_its_unfinished_steps(demo: dict[str, Any], tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(demo["root"], root)
    before = markers(root)
    (root / "steps" / "05-search.json").unlink()  # as if killed during the search step
    for later in ("06-anomalies", "07-maps", "08-ar"):
        (root / "steps" / f"{later}.json").unlink()
    (root / "search.png").unlink()
    code, _, err = run_cli("--root", str(root), *demo["args"][2:])
    assert code == 0, err
    after = markers(root)
    assert set(after) == set(before)
    for name in before:
        if name in ("05-search", "06-anomalies", "07-maps", "08-ar"):
            assert after[name]["finished"] >= before[name]["finished"]
            assert after[name]["metrics"].keys() == before[name]["metrics"].keys()
        else:
            assert after[name] == before[name], name  # finished steps are not redone
    assert (root / "search.png").exists()
    assert "search.png" in json.loads((root / "metrics.json").read_text())["figures"]


def test_bad_root_and_bad_model_fail_clearly(tmp_path: Path, demo: dict[str, Any]) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    code, _, err = run_cli("--root", str(a_file), "--preset", "tiny", "--train")
    assert code == 1 and "is not a folder" in err

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something.txt").write_text("x")
    code, _, err = run_cli("--root", str(busy), "--preset", "tiny", "--train")
    assert code == 1 and "not empty" in err

    foreign = tmp_path / "foreign"
    (foreign / "universe").mkdir(parents=True)
    (foreign / "universe" / "notes.txt").write_text("x")
    code, _, err = run_cli("--root", str(foreign), "--preset", "tiny", "--train")
    assert code == 1 and "holds no simulation" in err
    assert sorted(p.name for p in foreign.iterdir()) == ["universe"]  # the root is not tied to this run

    code, _, err = run_cli("--root", str(tmp_path / "new"), "--preset", "tiny", "--model", str(tmp_path / "nope"))
    assert code == 1 and "cannot find a pretrained model" in err
    assert not (tmp_path / "new" / "universe").exists()  # failed before simulating

    code, _, err = run_cli("--root", str(demo["root"]), "--preset", "tiny", "--train", "--seed", "1")
    assert code == 1 and "other options" in err and "seed" in err
