"""The demo's own figures (the others come from :mod:`astrofm.downstream.plots` and :mod:`astrofm.plotting`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from astrofm.downstream.plots import style
from astrofm.plotting import plot_image, plot_spectrum

#: Colour of each contender in the comparison figures.
COLOURS = {"model": "#1f5fa8", "random_init": "#999999", "pca": "#d98c1f", "colours": "#6a9f3a"}


def probe_comparison(tasks: Mapping[str, Mapping[str, Any]]) -> Any:
    """One panel per probe task: the model's score per input against the baselines' (bars)."""
    with style() as plt:
        fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 3.0), squeeze=False)
        for ax, result in zip(axes[0], tasks.values()):
            labels, values, colours = [], [], []
            for contender in ("model", "random_init", "pca"):
                for source, value in result[contender].items():
                    labels.append(f"{contender.replace('_', '-')}\n{source}")
                    values.append(value)
                    colours.append(COLOURS[contender])
            if result.get("colours") is not None:
                labels.append("colours\nonly")
                values.append(result["colours"])
                colours.append(COLOURS["colours"])
            ax.bar(range(len(values)), values, color=colours)
            for i, value in enumerate(values):
                ax.text(i, value, f"{value:.2f}", ha="center", va="bottom", fontsize=6)
            ax.set_xticks(range(len(values)), labels, fontsize=6, rotation=90)
            ax.set_ylabel(result["metric"])
            ax.set_title(result["title"])
            ax.set_ylim(min(0.0, min(values) - 0.05), 1.05)
        fig.tight_layout()
    return fig


def search_grid(queries: Sequence[Mapping[str, Any]], hits: Sequence[Sequence[Mapping[str, Any]]],
                similarities: np.ndarray, truth: Sequence[str]) -> Any:
    """One row per query galaxy: its image, then its top spectra (the query's own spectrum in green)."""
    n_hits = similarities.shape[1]
    with style() as plt:
        fig, axes = plt.subplots(len(queries), 1 + n_hits, figsize=(2.0 + 2.4 * n_hits, 1.9 * len(queries)),
                                 gridspec_kw={"width_ratios": [1.0] + [1.6] * n_hits}, squeeze=False)
        for row, (query, found, sims) in enumerate(zip(queries, hits, similarities)):
            plot_image(query["image"], axes[row, 0], title=f"query {query['object_id']}")
            for col, (sample, sim) in enumerate(zip(found, sims), start=1):
                ax = axes[row, col]
                own = sample["object_id"] == truth[row]
                plot_spectrum(sample["spectrum"], ax, smooth=9)
                ax.set_title(f"#{col} cos={sim:.2f}" + (" (its own)" if own else ""), fontsize=7,
                             color="#175" if own else "black")
                ax.set_xlabel("")
                ax.set_ylabel("")
                if own:
                    for spine in ax.spines.values():
                        spine.set_color("#175")
                        spine.set_linewidth(1.5)
        fig.tight_layout()
    return fig


def precision_before_after(results: Mapping[str, Mapping[str, Any]]) -> Any:
    """Precision in the top N of the anomaly ranking, before and after the active-learning round."""
    with style() as plt:
        fig, ax = plt.subplots(figsize=(1.6 + 1.6 * len(results), 2.8))
        names = list(results)
        x = np.arange(len(names))
        before = [results[n]["precision_before"] for n in names]
        after = [results[n]["precision_after"] for n in names]
        chance = [results[n]["chance"] for n in names]
        ax.bar(x - 0.2, before, 0.4, label="anomaly score", color="#999999")
        ax.bar(x + 0.2, after, 0.4, label=f"after 1 round ({results[names[0]]['labels']} labels)", color="#1f5fa8")
        ax.scatter(x, chance, marker="_", s=400, color="k", label="chance", zorder=3)
        ax.set_xticks(x, [f"{n}\n(top {results[n]['top_n']})" for n in names])
        ax.set_ylabel("precision in top N")
        ax.set_ylim(0, 1.02)
        ax.legend(frameon=False, fontsize=7)
        fig.tight_layout()
    return fig


def ar_completion(wavelength: np.ndarray, observed: np.ndarray, good: np.ndarray, completed: np.ndarray,
                  cuts: Sequence[int], titles: Sequence[str]) -> Any:
    """True against completed spectra: the prefix given, the rest generated token by token."""
    with style() as plt:
        fig, axes = plt.subplots(len(observed), 1, figsize=(8, 2.0 * len(observed)), squeeze=False)
        for ax, flux, ok, done, cut, title in zip(axes[:, 0], observed, good, completed, cuts, titles):
            ax.plot(wavelength[ok], flux[ok], color="0.55", lw=0.5, label="true spectrum")
            ax.plot(wavelength[cut:], done[cut:], color="#c03", lw=0.9, label="completed (next-token)")
            ax.axvline(wavelength[cut], color="k", ls=":", lw=0.8)
            low, high = np.nanpercentile(flux[ok], [1, 99]) if ok.any() else (-1.0, 1.0)
            ax.set_ylim(low - 0.5, high + 0.5)
            ax.set_ylabel("normalized flux")
            ax.set_title(title, fontsize=8)
            ax.legend(fontsize=6, loc="upper right", frameon=False)
        axes[-1, 0].set_xlabel("wavelength [Å]")
        fig.tight_layout()
    return fig
