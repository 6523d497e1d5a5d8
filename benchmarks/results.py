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
#: What a re-measurement on another machine keeps of the figure it replaces.
PREVIOUS_FIELDS = ("value", "met", "date", "machine", "command", "notes")


def machine() -> str:
    """A short description of this machine: cores, the CPU's vector capability and whether it computes bf16
    natively (speed figures depend on it), its GPU where torch sees one, and Python."""
    import torch

    from astrofm.utils.precision import native_bf16

    cpu = f"{torch.backends.cpu.get_cpu_capability()}, {'native' if native_bf16('cpu') else 'no native'} bf16"
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{os.cpu_count()} cores {platform.machine()} CPU ({cpu}){gpu}, Python {platform.python_version()}"


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
    """Write one figure under ``key`` and regenerate RESULTS.md. Returns the entry.

    A figure last recorded with another machine description is kept beside the new one (``previous_machine``: its value,
    date, machine, command and notes), so that re-measuring elsewhere does not erase it.
    """
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
    previous = results.get(key)
    if previous is not None:
        if previous.get("machine") != entry["machine"]:
            entry["previous_machine"] = {k: previous[k] for k in PREVIOUS_FIELDS if k in previous}
        elif "previous_machine" in previous:
            entry["previous_machine"] = previous["previous_machine"]
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
    notes = [(k, "; ".join(filter(None, [e.get("notes", ""), _previous_note(e)]))) for k, e in sorted(results.items())
             if e.get("notes") or "previous_machine" in e]
    if notes:
        lines += ["", "## Notes", ""] + [f"- `{k}`: {n}" for k, n in notes]
    atomic_write_text(RESULTS_MD, "\n".join(lines) + "\n")


def _previous_note(entry: dict[str, Any]) -> str:
    """The RESULTS.md note on the figure an entry keeps from another machine ("" if none)."""
    before = entry.get("previous_machine")
    if before is None:
        return ""
    met = {True: "met", False: "missed"}.get(before.get("met"), "")
    return (f"before: {before['value']:.4g}{f' ({met})' if met else ''} on {before['machine']} ({before['date']}),"
            f" `{before['command']}`.")


if __name__ == "__main__":
    write_markdown()
