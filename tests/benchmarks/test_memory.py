"""RSS tracking: the median trend after warm-up tells memory that grows with the work from single peaks."""

from __future__ import annotations

import pytest

from benchmarks.memory import MB, RSSTracker


def _tracker(monkeypatch: pytest.MonkeyPatch, owned_mb: list[float], warm: int) -> RSSTracker:
    """A tracker fed (RSS, no mapped pages) samples: 100 MB at start, then ``owned_mb``, warmed up from ``warm``."""
    samples = iter([(int(v * MB), 0) for v in [100.0, *owned_mb]])
    monkeypatch.setattr(RSSTracker, "_now", lambda self: next(samples))
    tracker = RSSTracker()
    for i in range(len(owned_mb)):
        tracker.sample(warmed_up=i >= warm)
    return tracker


def test_a_late_peak_counts_in_the_peak_growth_but_not_in_the_trend(monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = _tracker(monkeypatch, [100.0, 110.0] + [105.0] * 10 + [180.0] + [105.0] * 10, warm=2)
    assert tracker.owned_growth_mb() == pytest.approx(70.0)
    assert tracker.owned_trend_mb() == pytest.approx(0.0)


def test_steady_growth_shows_in_the_trend(monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = _tracker(monkeypatch, [100.0] * 2 + [100.0 + 2 * i for i in range(40)], warm=2)
    assert tracker.owned_trend_mb() == pytest.approx(60.0)  # medians of 100..118 and 160..178


def test_too_few_samples_after_warmup_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError, match="longer run"):
        _tracker(monkeypatch, [100.0, 101.0, 102.0], warm=1).owned_trend_mb()
