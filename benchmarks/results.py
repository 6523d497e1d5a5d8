"""Record benchmark figures in ``benchmarks/results.json`` and regenerate ``RESULTS.md``.

Ids and targets come from the project's targets table. A value is recorded as
measured, whether or not it meets its target.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

from astrofm.utils.atomic import atomic_write_text

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "RESULTS.md"


def machine() -> str:
    """A short description of this machine (its GPU too, where torch sees one)."""
    import torch

    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{os.cpu_count()} cores {platform.machine()} CPU{gpu}, Python {platform.python_version()}"


def command_line() -> str:
    """The command that is running, as a person would type it."""
    argv = sys.argv[:]
    if argv and argv[0].endswith(".py"):
        module = Path(argv[0]).resolve().relative_to(HERE.parent).with_suffix("")
        return "python -m " + ".".join(module.parts) + "".join(f" {a}" for a in argv[1:])
    return " ".join(argv)


def meets(value: float, target: str) -> bool | None:
    """Whether ``value`` meets a target such as ``>= 0.8``, ``< 0.9`` or ``0.5-0.95``."""
    target = target.strip()
    match = re.fullmatch(r"(>=|<=|>|<|==)\s*([-+0-9.eE]+)", target)
    if match:
        op, bound = match.group(1), float(match.group(2))
        return {">=": value >= bound, "<=": value <= bound, ">": value > bound, "<": value < bound,
                "==": value == bound}[op]
    match = re.fullmatch(r"([-+0-9.eE]+)\s*[-–]\s*([-+0-9.eE]+)", target)
    if match:
        return float(match.group(1)) <= value <= float(match.group(2))
    return None


def record(
    key: str,
    value: float,
    *,
    target: str,
    unit: str,
    baseline: str,
    command: str | None = None,
    notes: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """Write one figure under ``key`` and regenerate RESULTS.md. Returns the entry."""
    entry = {
        "value": round(float(value), 6),
        "target": target,
        "met": meets(float(value), target),
        "unit": unit,
        "baseline": baseline,
        "command": command or command_line(),
        "date": _dt.date.today().isoformat(),
        "machine": machine(),
        "notes": notes,
        **extra,
    }
    results = load()
    results[key] = entry
    _save(results)
    return entry


def _save(results: dict[str, Any]) -> None:
    atomic_write_text(RESULTS_JSON, json.dumps(dict(sorted(results.items())), indent=2) + "\n")
    write_markdown(results)


def load() -> dict[str, Any]:
    if RESULTS_JSON.exists():
        return json.loads(RESULTS_JSON.read_text())
    return {}


def write_markdown(results: dict[str, Any] | None = None) -> None:
    """Regenerate RESULTS.md from results.json."""
    results = load() if results is None else results
    lines = [
        "# Benchmark results",
        "",
        "Generated from `benchmarks/results.json` by `python -m benchmarks.results`; do not edit by hand.",
        "",
        "| id | value | unit | target | met | baseline | command | date | machine |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, e in sorted(results.items()):
        met = {True: "yes", False: "**no**", None: "-"}[e.get("met")]
        lines.append(
            f"| `{key}` | {e['value']:.4g} | {e['unit']} | {e['target']} | {met} | {e['baseline']} | "
            f"`{e['command']}` | {e['date']} | {e['machine']} |"
        )
    notes = [(k, e["notes"]) for k, e in sorted(results.items()) if e.get("notes")]
    if notes:
        lines += ["", "## Notes", ""] + [f"- `{k}`: {n}" for k, n in notes]
    atomic_write_text(RESULTS_MD, "\n".join(lines) + "\n")


if __name__ == "__main__":
    write_markdown()
