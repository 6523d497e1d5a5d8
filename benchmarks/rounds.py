"""Best of alternating rounds: speed ratios that hold on a shared, noisy machine.

On a virtual machine the speed of the same step drifts by 20-30% over minutes (other tenants, clock
changes). Timing each variant once, one after the other, puts that drift into the ratios. Running the
variants in turn, round after round, and keeping each one's fastest round gives every variant the same
chance at the machine's quiet moments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from astrofm.utils.precision import native_bf16

log = logging.getLogger("benchmarks.rounds")


def runnable_variants(uses_bf16: Mapping[str, bool], device: str = "cpu") -> list[str]:
    """The variants worth timing on ``device``: all of them where it computes bf16 natively, else those of
    ``uses_bf16`` (variant name -> whether it runs in bf16) that do not (emulated bf16 takes minutes a step)."""
    native = native_bf16(device)
    return [name for name, bf16 in uses_bf16.items() if native or not bf16]


def best_of_rounds(measure: Callable[[str], dict[str, Any]], variants: Sequence[str], rounds: int,
                   key: str = "samples_per_s") -> dict[str, dict[str, Any]]:
    """Run ``measure(variant)`` for every variant in turn, ``rounds`` times; per variant, its result with the
    highest ``key``, plus ``rounds_<key>`` (every round's value, in order)."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for i in range(rounds):
        for variant in variants:
            runs[variant].append(measure(variant))
        log.info("round %d/%d done", i + 1, rounds)
    best = {}
    for variant, results in runs.items():
        best[variant] = {**max(results, key=lambda r: r[key]), f"rounds_{key}": [r[key] for r in results]}
    return best
