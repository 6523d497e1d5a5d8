"""Run the demo's steps in order, each once: a finished step leaves a marker and is skipped on a rerun.

A marker ``DIR/steps/NN-name.json`` holds the step's metrics, figures, notes and wall time; it is
written (atomically) only when the step has finished, so a killed run redoes at most the step it was
in (and that step resumes what it can: the simulation, the embedding store, training checkpoints).
The report, ``metrics.json`` and the summary table are rebuilt from the markers at the end of every run.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from astrofm.demo import steps
from astrofm.demo.context import Context, StepResult, resolve_model
from astrofm.demo.layout import PRESETS, DemoOptions, check_root
from astrofm.demo.training import flush_denormals, recipe
from astrofm.errors import ConfigError
from astrofm.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)

#: The steps, in order: (name, title, function).
STEPS: list[tuple[str, str, Callable[[Context], StepResult]]] = [
    ("simulate", "The simulated universe", steps.simulate),
    ("model", "The model", steps.model),
    ("embed", "Embeddings of every object and modality", steps.embed),
    ("probes", "Probes: redshift, stellar mass, star class", steps.probes),
    ("search", "Cross-modal search: image -> spectrum", steps.search),
    ("anomalies", "Anomalies and one round of active learning", steps.anomalies),
    ("maps", "Maps of the embedding space", steps.maps),
    ("ar", "Autoregressive completion of a spectrum", steps.autoregressive),
]


def run_demo(options: DemoOptions) -> dict[str, Any]:
    """Run (or finish) the demo under ``options.root``; returns the metrics written to ``metrics.json``."""
    from astrofm.demo.summary import print_summary, write_outputs

    if options.preset not in PRESETS:
        raise ConfigError(f"unknown preset {options.preset!r}; choose one of {list(PRESETS)}")
    folder = None  # fail before touching the root if the model cannot be found or built
    if options.train:
        recipe(options.preset, options.config)
    else:
        folder = resolve_model(options.model)
    layout = check_root(options)
    context = Context(options, layout)
    if folder is not None:
        context.model_folder = folder
    layout.steps.mkdir(exist_ok=True)
    records: dict[str, dict[str, Any]] = {}
    for number, (name, title, step) in enumerate(STEPS, start=1):
        marker = layout.steps / f"{number:02d}-{name}.json"
        if marker.exists():
            records[name] = json.loads(marker.read_text())
            context.done[name] = records[name]["metrics"]
            log.info("step %d/%d %s: finished earlier (%.0f s), skipped", number, len(STEPS), name,
                     records[name]["seconds"])
            continue
        log.info("step %d/%d: %s", number, len(STEPS), title)
        start = time.perf_counter()
        flush_denormals()
        result = step(context)
        record = {"step": number, "name": name, "title": title, "seconds": round(time.perf_counter() - start, 2),
                  "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "metrics": result.metrics, "figures": [list(f) for f in result.figures], "notes": result.notes}
        atomic_write_text(marker, json.dumps(record, indent=1, default=_plain) + "\n")
        records[name] = json.loads(marker.read_text())
        context.done[name] = records[name]["metrics"]
        log.info("step %d/%d %s: done in %.1f s", number, len(STEPS), name, record["seconds"])
    metrics = write_outputs(options, layout, records)
    print_summary(metrics, layout.report)
    return metrics


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
