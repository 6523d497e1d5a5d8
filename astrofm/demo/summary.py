"""The demo's outputs from the step markers: ``metrics.json``, ``report.html`` and the printed summary table."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from typing import Any

from astrofm._version import __version__
from astrofm.demo.layout import DemoOptions, Layout
from astrofm.demo.report import Section, write_report
from astrofm.utils.atomic import atomic_write_text

HEADER = ("task", "input", "metric", "model", "random-init", "PCA", "colours-only", "other reference")


def comparison_rows(metrics: Mapping[str, Any]) -> list[list[Any]]:
    """One row per probe task and model input, plus search, anomalies and AR: the model against the baselines."""
    rows: list[list[Any]] = []
    tasks = metrics["steps"].get("probes", {}).get("tasks", {})
    for task in tasks.values():
        for source, value in task["model"].items():
            colours = task.get("colours")
            rows.append([task["title"], source, task["metric"], value, task["random_init"].get(source, "-"),
                         task["pca"].get(source, "-"), "-" if colours is None else colours, "-"])
    search = metrics["steps"].get("search", {})
    if "model" in search:
        rows.append(["image -> spectrum search", f"{search['candidates']} test galaxies", "recall@10",
                     search["model"]["recall_at_10"], search["random_init"]["recall_at_10"], "-", "-",
                     f"chance {search['chance_recall_at_10']:.3f}"])
    for population, result in metrics["steps"].get("anomalies", {}).get("populations", {}).items():
        if "skipped" in result:
            continue
        rows.append([f"anomalies ({population})", f"{result['embeddings']}, before / after AL",
                     f"precision@{result['top_n']}",
                     f"{result['precision_before']:.3f} / {result['precision_after']:.3f}", "-", "-", "-",
                     f"chance {result['chance']:.3f}"])
    ar = metrics["steps"].get("ar", {})
    if "median_mse" in ar:
        rows.append(["AR spectrum completion", "prefix of the spectrum", "median MSE (lower better)",
                     ar["median_mse"], "-", "-", "-", f"mean spectrum {ar['median_mse_mean_spectrum']:.3f}"])
    return rows


def write_outputs(options: DemoOptions, layout: Layout, records: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Write ``metrics.json`` and ``report.html`` (every figure inline); return the metrics."""
    figures = [name for record in records.values() for name, _ in record["figures"]]
    metrics: dict[str, Any] = {
        "astrofm_version": __version__,
        "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "options": options.identity(),
        "timings": {name: record["seconds"] for name, record in records.items()},
        "total_seconds": round(sum(record["seconds"] for record in records.values()), 1),
        "steps": {name: record["metrics"] for name, record in records.items()},
        "figures": figures,
    }
    metrics["summary"] = [dict(zip(HEADER, row)) for row in comparison_rows(metrics)]
    atomic_write_text(layout.metrics, json.dumps(metrics, indent=1, default=str) + "\n")
    write_report(layout.report, "astrofm demo", _sections(metrics, layout, records), metrics=metrics)
    return metrics


def _sections(metrics: Mapping[str, Any], layout: Layout, records: Mapping[str, Mapping[str, Any]]) -> list[Section]:
    options = metrics["options"]
    model = metrics["steps"].get("model", {})
    overview = Section("Summary")
    overview.text(f"Preset {options['preset']!r}, seed {options['seed']}, model "
                  f"{model.get('name', options['model'])} ({', '.join(model.get('modalities', []))}; "
                  f"{model.get('parameters', 0):,} parameters"
                  + (", trained in this run" if model.get("trained_here") else "") + "). "
                  "Every baseline was measured in this run: random-init and PCA on the model's objects, "
                  "colours-only on those of them whose catalogue fluxes are all positive.")
    overview.table(HEADER, comparison_rows(metrics))
    overview.table(("step", "seconds"), [[name, seconds] for name, seconds in metrics["timings"].items()]
                   + [["total", metrics["total_seconds"]]])
    sections = [overview]
    for name, record in records.items():
        section = Section(f"{record['step']}. {record['title']}")
        for line in _describe(name, record["metrics"]):
            section.text(line)
        for note in record.get("notes", []):
            section.text(note)
        for file, caption in record["figures"]:
            section.figure(layout.root / file, caption)
        sections.append(section)
    return sections


def _describe(name: str, m: Mapping[str, Any]) -> list[str]:
    """A sentence or two per step from its metrics."""
    if name == "simulate":
        return [f"{m['objects']['galaxies']:,} galaxies and {m['objects']['stars']:,} variable stars "
                f"(preset {m['preset']!r}, seed {m['seed']}) in {m['root']}."]
    if name == "model":
        trained = m.get("training") or {}
        lines = [f"{m['name']} (version {m['version']}) from {m['folder']}: modalities {', '.join(m['modalities'])}, "
                 f"{m['embed_dim']}-d shared space."]
        if trained:
            lines.append(f"Trained here for {trained['steps']} steps in {trained['seconds']:.0f} s "
                         f"(contrastive loss {trained['first_loss']:.3f} -> {trained['final_loss']:.3f}).")
        return lines
    if name == "embed":
        counts = ", ".join(f"{k}: {v:,}" for k, v in m["vectors"].items())
        return [f"{m['objects']:,} of the {m['of']:,} objects embedded into {m['store']} ({counts} vectors): a sample "
                f"of the train split and of the test split of each population ({m['sample']})."]
    if name == "probes":
        return [f"Probe: {m['probe']}; trained on train-split objects, scored on test-split objects (anomalies "
                "excluded). Random-init: the same architecture, untrained. PCA: 32 components of the model's "
                "preprocessed inputs. Colours-only: catalog colours (galaxies g-r, r-i, i-z, z-W1, W1-W2; stars "
                "Gaia/2MASS/WISE colours)."]
    if name == "search" and "model" in m:
        return [f"Recall@10 of each test galaxy's own spectrum among {m['candidates']}: "
                f"{m['model']['recall_at_10']:.3f} (recall@1 {m['model']['recall_at_1']:.3f}); random-init model "
                f"{m['random_init']['recall_at_10']:.3f}; chance {m['chance_recall_at_10']:.3f}."]
    if name == "anomalies":
        return [f"{population}: precision in the top {r['top_n']} {r['precision_before']:.3f} from the anomaly score, "
                f"{r['precision_after']:.3f} after labelling {r['labels']} objects (chance {r['chance']:.3f})."
                for population, r in m["populations"].items() if "skipped" not in r]
    if name == "ar":
        return [f"{m['model']}, {m['training']['steps']} steps in {m['training']['seconds']:.0f} s (loss "
                f"{m['training']['first_loss']:.3f} -> {m['training']['final_loss']:.3f}). Median MSE of the "
                f"completed part over {m['test_spectra']} test spectra: {m['median_mse']:.3f}, against "
                f"{m['median_mse_mean_spectrum']:.3f} for the mean train spectrum."]
    return []


def format_table(rows: list[list[Any]], header: tuple[str, ...] = HEADER) -> str:
    """Aligned text columns (floats with 3 decimals)."""
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def print_summary(metrics: Mapping[str, Any], report: Any) -> None:
    """The model against the baselines, as a text table (the demo's one print)."""
    print(format_table(comparison_rows(metrics)))
    print(f"total step time {metrics['total_seconds'] / 60:.1f} min; report: {report}")
