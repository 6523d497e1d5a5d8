"""UMAP maps: reproducible with a seed, cached on disk; figures render."""

from __future__ import annotations

import numpy as np
import pytest
import umap

from astrofm.downstream import plots
from astrofm.downstream.maps import umap_projection
from astrofm.errors import ConfigError
from tests.downstream.synthetic import gaussian_classes


def test_map_is_reproducible_cached_and_keeps_clusters(tmp_path, monkeypatch):
    X, labels = gaussian_classes(600, dim=16, n_classes=3, seed=0)
    first = umap_projection(X, seed=3, cache_dir=tmp_path)
    assert first.shape == (600, 2) and first.dtype == np.float32
    assert len(list(tmp_path.glob("umap-*.npy"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("UMAP recomputed despite the cache")

    with monkeypatch.context() as patch:
        patch.setattr(umap, "UMAP", refuse)
        np.testing.assert_array_equal(umap_projection(X, seed=3, cache_dir=tmp_path), first)
    np.testing.assert_array_equal(umap_projection(X, seed=3), first)  # same seed, no cache: same map
    assert len(list(tmp_path.glob("umap-*.npy"))) == 1
    umap_projection(X[:300], seed=3, cache_dir=tmp_path)  # other vectors: another cache entry
    assert len(list(tmp_path.glob("umap-*.npy"))) == 2
    # separated classes stay separated: every point's nearest map neighbour has its class
    d = ((first[:, None] - first[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(axis=1)] == labels).mean() > 0.95


def test_figures_render(tmp_path):
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(300, 2)).astype(np.float32)
    plots.save(plots.plot_map(xy, rng.uniform(size=300), label="z"), tmp_path / "a.png")
    plots.save(plots.plot_map(xy, rng.choice(["EW", "RRAB"], 300), label="class"), tmp_path / "b.png")
    rows = plots.spread_rows(xy, 16)
    assert 1 <= len(rows) <= 16 and len(np.unique(rows)) == len(rows)
    samples = plots.load_samples(None, [str(r) for r in rows])
    plots.save(plots.plot_map_thumbnails(xy, samples, rows), tmp_path / "c.png")
    curve = [{"fraction": f, "mean": {"r2": f}, "std": {"r2": 0.01}} for f in (0.01, 0.1, 1.0)]
    plots.save(plots.plot_label_fraction_curves({"knn": curve}, "r2"), tmp_path / "d.png")
    plots.save(plots.plot_confusion([[5, 1], [2, 7]], ["a", "b"]), tmp_path / "e.png")
    plots.save(plots.plot_precision_curve([{"n_labels": 0, "precision": 0.5}, {"n_labels": 20, "precision": 0.9}],
                                          top_n=60), tmp_path / "f.png")
    for name in "abcdef":
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("n", [10, 5000])
def test_true_vs_predicted_plot(tmp_path, n):
    z = np.linspace(0, 1, n)
    fig = plots.plot_true_vs_predicted(z, z + 0.01, {"r2": 0.99, "n": n}, label="z", redshift=True)
    assert plots.save(fig, tmp_path / "p.png").stat().st_size > 1000


def test_map_of_too_few_objects_is_refused():
    X = np.random.default_rng(0).normal(size=(4, 8))
    with pytest.raises(ConfigError, match="a UMAP map needs at least 4 objects, not 3"):
        umap_projection(X[:3])
    assert umap_projection(X).shape == (4, 2)
