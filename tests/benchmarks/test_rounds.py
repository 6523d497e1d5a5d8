"""Best of alternating rounds: variants run in turn, each keeps its fastest round."""

from __future__ import annotations

import pytest

from benchmarks import rounds
from benchmarks.rounds import best_of_rounds, runnable_variants


def test_variants_alternate_and_each_keeps_its_best_round() -> None:
    calls = []
    speeds = iter([1.0, 5.0, 3.0, 2.0, 2.0, 4.0])

    def measure(variant: str) -> dict[str, float]:
        calls.append(variant)
        return {"samples_per_s": next(speeds), "round": len(calls)}

    best = best_of_rounds(measure, ["a", "b"], rounds=3)
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert best["a"]["samples_per_s"] == 3.0 and best["a"]["round"] == 3
    assert best["b"]["samples_per_s"] == 5.0 and best["b"]["rounds_samples_per_s"] == [5.0, 2.0, 4.0]


def test_rounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rounds"):
        best_of_rounds(lambda v: {"samples_per_s": 1.0}, ["a"], rounds=0)


@pytest.mark.parametrize(("native", "expected"), [(True, ["fp32", "bf16", "fp32_compile"]),
                                                  (False, ["fp32", "fp32_compile"])])
def test_bf16_variants_run_only_where_bf16_is_native(monkeypatch: pytest.MonkeyPatch, native: bool,
                                                     expected: list[str]) -> None:
    monkeypatch.setattr(rounds, "native_bf16", lambda device: native and device == "cuda")
    uses_bf16 = {"fp32": False, "bf16": True, "fp32_compile": False}
    assert runnable_variants(uses_bf16, "cuda") == expected
    assert runnable_variants(uses_bf16) == ["fp32", "fp32_compile"]
