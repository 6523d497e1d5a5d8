"""The downstream commands end to end on small stores: probe, search, anomaly, features, map."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.table import Table

from astrofm.cli import main
from astrofm.data.dataset import write_dataset
from astrofm.downstream.store import EmbeddingStore
from tests.downstream.synthetic import make_store, planted_outliers, smooth_manifold
from tests.helpers.synthetic import make_samples

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A galaxy store (image + spectrum views), its catalog, an MMU dataset of 40 of its objects,
    and a store with planted anomalies and its truth catalog."""
    root = tmp_path_factory.mktemp("cli")
    X, z = smooth_manifold(600, dim=32, seed=4)
    rng = np.random.default_rng(4)
    ids = np.arange(600)
    make_store(root / "galaxies.store", {"image": (ids, X), "spectrum": (ids[:500], X[:500, :16] + 0.01 * rng.normal(
        size=(500, 16)))})
    catalog = Table({"object_id": ids, "z": z, "class": np.where(z < 0.3, "near", np.where(z < 0.5, "mid", "far")),
                     "split": np.where(rng.uniform(size=600) < 0.8, "train", "test")})
    catalog.write(root / "catalog.parquet")
    write_dataset(root / "mmu", make_samples(40, seed=0, id_offset=0))
    A, interesting, _ = planted_outliers(1415, seed=2)  # 1500 objects, 60 of them interesting
    make_store(root / "anomalies.store", {"image": (np.arange(1500), A)}, normalization="none")
    Table({"object_id": np.arange(1500), "is_lens": interesting}).write(root / "truth.ecsv")
    return root


def test_probe_regression_and_classification(world, tmp_path, capsys):
    out = tmp_path / "probe"
    assert main(["probe", "--store", str(world / "galaxies.store"), "--modality", "image", "--catalog",
                 str(world / "catalog.parquet"), "--target", "z", "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["task"] == "redshift" and report["probe"] == "knn" and report["params"]["k"] == 64
    assert report["test"]["r2"] >= 0.9 and report["n_train"] == 480 and report["n_test"] == 120
    assert (out / "true_vs_predicted.png").read_bytes()[:8] == PNG
    assert "nmad" in capsys.readouterr().out

    out = tmp_path / "classes"
    assert main(["probe", "--store", str(world / "galaxies.store"), "--modality", "image", "--catalog",
                 str(world / "catalog.parquet"), "--target", "class", "--probe", "linear", "--split-column", "split",
                 "--cv", "3", "--label-fractions", "--seeds", "2", "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["task"] == "classification"
    assert report["test"]["accuracy"] > report["test"]["majority_accuracy"] + 0.3
    assert len(report["label_fractions"]) == 5 and len(report["cross_validation"]["folds"]) == 3
    for name in ("confusion.png", "label_fractions.png"):
        assert (out / name).read_bytes()[:8] == PNG


def test_search_exact_cross_modal_and_ann_index(world, tmp_path, capsys):
    store = str(world / "galaxies.store")
    out = tmp_path / "search"
    assert main(["search", "--store", store, "--modality", "image", "--id", "3", "45", "--k", "5",
                 "--data", str(world / "mmu"), "--out", str(out)]) == 0
    table = Table.read(out / "neighbours.ecsv")
    assert len(table) == 10 and "3" not in table["object_id"][table["query_id"] == "3"]
    assert (out / "neighbours.png").read_bytes()[:8] == PNG
    assert "query_id" in capsys.readouterr().out

    assert main(["search", "--store", store, "--modality", "spectrum", "--target-modality", "spectrum", "--id", "7",
                 "--k", "3", "--ann", "hnsw", "--index", str(tmp_path / "index"), "--out", str(out)]) == 0
    assert (tmp_path / "index" / "index.json").exists()
    assert main(["search", "--store", store, "--modality", "spectrum", "--id", "7", "--k", "3",
                 "--index", str(tmp_path / "index"), "--out", str(out)]) == 0  # loaded, not rebuilt
    np.save(tmp_path / "q.npy", np.eye(16, dtype=np.float32)[0])
    assert main(["search", "--store", store, "--modality", "spectrum", "--vector", str(tmp_path / "q.npy"),
                 "--out", str(out)]) == 0
    assert len(Table.read(out / "neighbours.ecsv")) == 10


def test_search_reports_a_stale_index_and_bad_ids(world, tmp_path, capsys):
    store_path = tmp_path / "copy.store"
    make_store(store_path, {"image": (np.arange(50), np.random.default_rng(0).normal(size=(50, 8)))})
    args = ["search", "--store", str(store_path), "--id", "1", "--out", str(tmp_path / "o")]
    assert main([*args, "--ann", "flat", "--index", str(tmp_path / "idx")]) == 0
    EmbeddingStore.open(store_path, mode="a").append("image", ["new"], np.eye(8, dtype=np.float32)[:1])
    capsys.readouterr()
    assert main([*args, "--index", str(tmp_path / "idx")]) == 1
    assert "store changed since the index was built" in capsys.readouterr().err
    assert main(["search", "--store", str(store_path), "--id", "nope", "--out", str(tmp_path / "o")]) == 1
    assert "object_id=nope" in capsys.readouterr().err


def test_anomaly_oracle_and_human_labels(world, tmp_path, capsys):
    store = str(world / "anomalies.store")
    out = tmp_path / "anomaly"
    assert main(["anomaly", "--store", store, "--method", "knn", "--catalog", str(world / "truth.ecsv"),
                 "--oracle", "is_lens", "--rounds", "5", "--per-round", "20", "--top", "12", "--out", str(out)]) == 0
    curve = json.loads((out / "anomaly.json").read_text())["oracle"]["curve"]
    assert curve[0]["precision"] >= 0.5 and curve[-1]["precision"] >= 0.8 and curve[-1]["n_labels"] == 100
    ranked = Table.read(out / "ranked.ecsv")
    assert len(ranked) == 1500 and ranked["rank"][0] == 1 and np.isfinite(ranked["label"]).sum() == 100
    assert (out / "gallery.png").read_bytes()[:8] == PNG and (out / "precision.png").read_bytes()[:8] == PNG
    assert "precision in the top 60" in capsys.readouterr().out

    to_label = Table.read(out / "to_label.csv", format="ascii.csv")
    assert len(to_label) == 12
    labels = Table({"object_id": to_label["object_id"][:3], "score": [5, 0, 2]})
    labels.write(tmp_path / "labels.csv", format="ascii.csv")
    again = tmp_path / "again"
    assert main(["anomaly", "--store", store, "--method", "knn", "--state", str(out / "state.json"), "--labels",
                 str(tmp_path / "labels.csv"), "--out", str(again)]) == 0
    state = json.loads((again / "state.json").read_text())
    assert len(state["labels"]) == 103 and state["labels"][str(to_label["object_id"][2])] == 2.0
    assert main(["anomaly", "--store", store, "--method", "lof", "--state", str(out / "state.json"),
                 "--out", str(again)]) == 1  # other anomaly scores: the saved labels do not apply
    assert "differ from those the labels were given on" in capsys.readouterr().err


def test_features_command(world, tmp_path, capsys):
    out = tmp_path / "features"
    assert main(["features", "--store", str(world / "galaxies.store"), "--modality", "image", "--n-features", "64",
                 "--k", "4", "--epochs", "3", "--catalog", str(world / "catalog.parquet"), "--columns", "z",
                 "--top-features", "2", "--per-feature", "6", "--data", str(world / "mmu"), "--steer-id", "10",
                 "--steer-feature", "0", "--steer-delta", "2", "--out", str(out)]) == 0
    assert len(Table.read(out / "features.ecsv")) == 64
    correlations = Table.read(out / "correlations.ecsv")
    assert set(correlations["column"]) == {"z"} and np.abs(correlations["spearman_rho"]).max() > 0.3
    assert len(list(out.glob("feature_*.png"))) == 2
    steered = Table.read(out / "steered_search.ecsv")
    assert len(steered) == 10 and "10" not in steered["object_id"]
    assert (out / "sae" / "sae.safetensors").exists()
    assert "reconstruction R²" in capsys.readouterr().out


def test_map_command(world, tmp_path):
    out = tmp_path / "map"
    assert main(["map", "--store", str(world / "galaxies.store"), "--modality", "spectrum", "--catalog",
                 str(world / "catalog.parquet"), "--color", "z", "class", "--data", str(world / "mmu"),
                 "--thumbnails", "9", "--out", str(out)]) == 0
    for name in ("map.png", "map_z.png", "map_class.png", "map_thumbnails.png"):
        assert (out / name).read_bytes()[:8] == PNG
    coordinates = Table.read(out / "map.ecsv")
    assert len(coordinates) == 500 and len(list(out.glob("umap-*.npy"))) == 1


def test_commands_report_bad_options_cleanly(world, tmp_path, capsys):
    store = str(world / "galaxies.store")
    assert main(["probe", "--store", store, "--catalog", str(world / "catalog.parquet"), "--target", "z",
                 "--out", str(tmp_path)]) == 1
    assert "choose a modality" in capsys.readouterr().err
    assert main(["probe", "--store", store, "--modality", "image", "--catalog", str(world / "catalog.parquet"),
                 "--target", "mass", "--out", str(tmp_path)]) == 1
    assert "field 'mass'" in capsys.readouterr().err
    assert main(["map", "--store", str(tmp_path / "none"), "--out", str(tmp_path)]) == 1
    assert "not an embedding store" in capsys.readouterr().err


def test_search_checks_query_files_and_k(tmp_path, capsys):
    store = tmp_path / "small.store"
    make_store(store, {"image": (np.arange(5), np.random.default_rng(0).normal(size=(5, 8)))})
    args = ["search", "--store", str(store), "--out", str(tmp_path / "o")]
    (tmp_path / "q.txt").write_text("1 2 3")
    for bad in (tmp_path / "missing.npy", tmp_path / "q.txt"):
        assert main([*args, "--vector", str(bad), "--k", "2"]) == 1
        assert f"{bad}: cannot read query vectors" in capsys.readouterr().err
    assert main([*args, "--id", "1", "--k", "5"]) == 1  # the query itself is not among its neighbours
    assert "--k must lie in [1, 4]" in capsys.readouterr().err
    assert main([*args, "--id", "1", "--k", "5", "--include-self"]) == 0
    assert len(Table.read(tmp_path / "o" / "neighbours.ecsv")) == 5
    np.save(tmp_path / "q.npy", np.eye(8, dtype=np.float32)[:2])
    assert main([*args, "--vector", str(tmp_path / "q.npy"), "--k", "6"]) == 1
    assert "--k must lie in [1, 5]" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--n-features", "-5"], "n_features must be positive"),
        (["--n-features", "8", "--steer-id", "10", "--steer-feature", "8"], "--steer-feature must lie in [0, 8)"),
        (["--steer-id", "10"], "--steer-id needs --steer-feature"),
        (["--steer-feature", "1"], "need --steer-id"),
        (["--steer-id", "nope", "--steer-feature", "1"], "object_id=nope"),
    ],
)
def test_features_checks_options_before_training(world, tmp_path, capsys, options, message):
    out = tmp_path / "features"
    assert main(["features", "--store", str(world / "galaxies.store"), "--modality", "image", "--epochs", "1",
                 *options, "--out", str(out)]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing trained nor written
