"""Figures of the downstream jobs (matplotlib, PNG): maps, probe scatter plots, label-fraction curves,
confusion matrices, anomaly galleries, neighbour grids and active-learning curves.

Every function returns a figure drawn under :func:`style` (publication defaults: 7–9 pt text,
thin lines, no top/right spines, 200 dpi); :func:`save` writes it as PNG.
Thumbnails come from MMU datasets through :func:`load_samples`; a missing object gets a placeholder.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.errors import DataFormatError
from astrofm.plotting import save_figure, thumbnail_grid
from astrofm.plotting.modalities import PLOTTERS, pyplot

log = logging.getLogger(__name__)

#: Matplotlib settings of every downstream figure.
STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.0,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": "viridis",
}


DataFolders = str | Path | Sequence[str | Path] | None


@contextlib.contextmanager
def style() -> Iterator[Any]:
    """Matplotlib rc context with :data:`STYLE`; yields pyplot."""
    plt = pyplot()
    with plt.rc_context(STYLE):
        yield plt


def save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as PNG at the style's resolution (atomically) and close it."""
    return save_figure(fig, path, dpi=int(STYLE["savefig.dpi"]))


# -- thumbnails ---------------------------------------------------------------------------------------
def load_samples(data: DataFolders, object_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Sample dicts of ``object_ids`` from one or more MMU dataset folders (modalities merged by id).

    An object found in none of them (or no data at all) gives ``{"object_id": id}``, drawn as a placeholder.
    """
    datasets = _datasets(data)
    samples = []
    for oid in object_ids:
        sample: dict[str, Any] = {"object_id": str(oid)}
        for dataset in datasets:
            try:
                found = dataset.get(oid)
            except DataFormatError:
                continue
            sample.update({k: v for k, v in found.items() if k not in sample})
        samples.append(sample)
    missing = sum(len(s) == 1 for s in samples)
    if missing and datasets:
        log.info("%d of %d objects not in the data: drawn as placeholders", missing, len(samples))
    return samples


def data_ids(data: DataFolders) -> np.ndarray:
    """Every object_id in the MMU dataset folder(s)."""
    ids = [dataset.catalog.object_id for dataset in _datasets(data)]
    return np.unique(np.concatenate(ids)) if ids else np.array([], dtype=str)


def _datasets(data: DataFolders) -> list[Any]:
    from astrofm.data.dataset import MMUDataset

    folders = [] if data is None else [data] if isinstance(data, str | Path) else list(data)
    return [MMUDataset(folder) for folder in folders]


def gallery(
    samples: Sequence[Mapping[str, Any] | None],
    titles: Sequence[str],
    *,
    modality: str | None = None,
    ncols: int = 6,
    title: str | None = None,
) -> Any:
    """A thumbnail grid (images, spectra or light curves, whatever is present) with a title per object.

    A ``None`` sample leaves its cell blank.
    """
    with style():
        fig = thumbnail_grid(samples, modality=modality, ncols=ncols, titles=list(titles))
        if title:
            fig.suptitle(title, fontsize=9)
            fig.tight_layout()
    return fig


def neighbour_grid(
    query_samples: Sequence[Mapping[str, Any]],
    result_samples: Sequence[Sequence[Mapping[str, Any]]],
    distances: np.ndarray,
    *,
    modality: str | None = None,
) -> Any:
    """One row per query: the query, then its neighbours with their distances (``distances`` (q, k)).

    A query with fewer than k neighbours (``result_samples`` rows shorter than k: the missing ones trail)
    gets blank cells, so every query starts its own row.
    """
    width = distances.shape[1]
    samples: list[Mapping[str, Any] | None] = []
    titles: list[str] = []
    for query, results, dist in zip(query_samples, result_samples, distances):
        cells = list(zip(results, dist))
        blank = width - len(cells)
        samples += [query, *(sample for sample, _ in cells)] + [None] * blank
        titles += [f"query {query['object_id']}", *(f"{sample['object_id']}\nd={d:.3g}" for sample, d in cells)]
        titles += [""] * blank
    return gallery(samples, titles, modality=modality, ncols=1 + width)


# -- maps ---------------------------------------------------------------------------------------------
def plot_map(xy: np.ndarray, values: Any = None, *, label: str | None = None, title: str | None = None) -> Any:
    """The 2-D map coloured by ``values`` (numeric: colour bar; otherwise one colour per category).

    Numeric values with at most 12 distinct ones are categories too; NaN or inf values are drawn grey
    ("unknown" in the legend).
    """
    with style() as plt:
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
        size = float(np.clip(3000.0 / max(len(xy), 1), 0.3, 12.0))
        if values is None:
            ax.scatter(xy[:, 0], xy[:, 1], s=size, c="0.3", lw=0, rasterized=True)
        else:
            values = np.asarray(values)
            numeric = values.dtype.kind in "fiu"
            known = np.isfinite(values.astype(np.float64)) if numeric else np.ones(len(values), bool)
            categories = np.unique(values[known])
            continuous = numeric and len(categories) > 12
            if continuous:
                points = ax.scatter(xy[known, 0], xy[known, 1], c=values[known], s=size, lw=0, rasterized=True)
                fig.colorbar(points, ax=ax, label=label or "")
            else:
                cmap = plt.get_cmap("tab10" if len(categories) <= 10 else "tab20")
                for i, category in enumerate(categories):
                    sel = values == category
                    ax.scatter(
                        xy[sel, 0],
                        xy[sel, 1],
                        s=size,
                        color=cmap(i % cmap.N),
                        lw=0,
                        label=str(category),
                        rasterized=True,
                    )
            if not known.all():  # NaN / inf: grey, under the others, last in the legend
                ax.scatter(xy[~known, 0], xy[~known, 1], s=size, c="0.85", lw=0, label="unknown", zorder=0.9,
                           rasterized=True)
            if not continuous:
                ax.legend(title=label, markerscale=max(1.0, 6 / size), frameon=False, loc="best")
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
        if title:
            ax.set_title(title)
        fig.tight_layout()
    return fig


def plot_map_thumbnails(
    xy: np.ndarray,
    samples: Sequence[Mapping[str, Any]],
    rows: Sequence[int],
    *,
    modality: str | None = None,
    size: float = 0.09,
) -> Any:
    """The map in grey with thumbnails of ``samples`` (objects ``rows`` of ``xy``) at their positions.

    ``size`` is the thumbnail width as a fraction of the axes; objects without data are not drawn.
    """
    with style() as plt:
        fig, ax = plt.subplots(figsize=(7, 6))
        ax.scatter(xy[:, 0], xy[:, 1], s=1, c="0.8", lw=0, rasterized=True)
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
        low, high = xy.min(axis=0), xy.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        for sample, row in zip(samples, rows):
            name = modality or next((m for m in PLOTTERS if m in sample), None)
            if name is None or name not in sample:
                continue  # not in the data: the grey point stays
            x, y = (xy[row] - low) / span * (1 - size) + size / 2
            inset = ax.inset_axes([x - size / 2, y - size / 2, size, size])
            PLOTTERS[name](sample[name], inset)
            inset.set_xticks([])
            inset.set_yticks([])
            inset.set_xlabel("")
            inset.set_ylabel("")
        fig.tight_layout()
    return fig


def spread_rows(xy: np.ndarray, n: int, among: np.ndarray | None = None) -> np.ndarray:
    """About ``n`` objects spread over the map: the one nearest the centre of each occupied cell of a
    √n × √n grid, chosen among the rows where ``among`` (bool) is true."""
    side = max(1, int(np.ceil(np.sqrt(n))))
    low, high = xy.min(axis=0), xy.max(axis=0)
    cells = np.floor((xy - low) / np.where(high > low, high - low, 1.0) * side).clip(0, side - 1).astype(int)
    centres = low + (cells + 0.5) / side * (high - low)
    distance = np.linalg.norm(xy - centres, axis=1)
    candidates = np.flatnonzero(among) if among is not None else np.arange(len(xy))
    key = cells[candidates, 0] * side + cells[candidates, 1]
    order = np.lexsort((distance[candidates], key))
    first = np.unique(key[order], return_index=True)[1]
    return np.sort(candidates[order[first]])[:n]


# -- probes -------------------------------------------------------------------------------------------
def plot_true_vs_predicted(
    y_true: Any, y_pred: Any, metrics: Mapping[str, Any], *, label: str = "target", redshift: bool = False
) -> Any:
    """Predicted against true values with the 1:1 line (and |Δz|/(1+z) = 0.15 bounds for redshift)."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    with style() as plt:
        fig, ax = plt.subplots(figsize=(3.6, 3.4))
        low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
        if len(y_true) > 3000:
            ax.hexbin(y_true, y_pred, gridsize=80, bins="log", mincnt=1, extent=(low, high, low, high))
        else:
            ax.scatter(y_true, y_pred, s=4, alpha=0.6, lw=0)
        line = np.linspace(low, high, 100)
        ax.plot(line, line, "k-", lw=0.6)
        if redshift:
            from astrofm.downstream.metrics import OUTLIER_THRESHOLD

            for sign in (-1, 1):
                ax.plot(line, line + sign * OUTLIER_THRESHOLD * (1 + line), "k--", lw=0.5)
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_xlabel(f"true {label}")
        ax.set_ylabel(f"predicted {label}")
        text = "\n".join(f"{k} = {v:.3g}" for k, v in metrics.items() if isinstance(v, float))
        ax.text(0.04, 0.96, text, transform=ax.transAxes, va="top", fontsize=7)
        fig.tight_layout()
    return fig


def plot_confusion(matrix: Any, labels: Sequence[Any], *, normalize: bool = True) -> Any:
    """Confusion matrix (rows: true class), coloured by the fraction of each true class, with counts."""
    matrix = np.asarray(matrix, np.float64)
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalize else matrix
    with style() as plt:
        n = len(labels)
        fig, ax = plt.subplots(figsize=(1.2 + 0.35 * n, 1.0 + 0.35 * n))
        image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
        if n <= 15:
            for (i, j), value in np.ndenumerate(matrix):
                colour = "white" if shown[i, j] > 0.6 * shown.max() else "black"
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=6, color=colour)
        ax.set_xticks(range(n), [str(x) for x in labels], rotation=90)
        ax.set_yticks(range(n), [str(x) for x in labels])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
    return fig


def plot_label_fraction_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]], metric: str) -> Any:
    """``metric`` (mean ± std over seeds) against the fraction of training labels, one line per curve."""
    with style() as plt:
        fig, ax = plt.subplots(figsize=(3.8, 3.0))
        for name, curve in curves.items():
            fractions = [point["fraction"] * 100 for point in curve]
            ax.errorbar(
                fractions,
                [p["mean"][metric] for p in curve],
                yerr=[p["std"][metric] for p in curve],
                marker="o",
                ms=3,
                capsize=2,
                label=name,
            )
        ax.set_xscale("log")
        ax.set_xlabel("labels used [%]")
        ax.set_ylabel(metric)
        ax.legend(frameon=False)
        fig.tight_layout()
    return fig


# -- anomalies ----------------------------------------------------------------------------------------
def plot_precision_curve(curve: Sequence[Mapping[str, float]], *, top_n: int) -> Any:
    """Precision in the top N against the number of labels of an active-learning run."""
    with style() as plt:
        fig, ax = plt.subplots(figsize=(3.6, 2.8))
        ax.plot([p["n_labels"] for p in curve], [p["precision"] for p in curve], "o-", ms=3)
        ax.set_xlabel("labels given")
        ax.set_ylabel(f"precision in top {top_n}")
        ax.set_ylim(0, 1.02)
        fig.tight_layout()
    return fig
