"""Bootstrap intervals of figures over the objects they are measured on."""

from __future__ import annotations

import numpy as np
import pytest

from astrofm.downstream.metrics import bootstrap_interval, precision_at_k
from astrofm.errors import ConfigError


def test_interval_of_a_mean_covers_the_truth_at_its_level_with_the_textbook_width():
    rng = np.random.default_rng(0)
    covered, widths = 0, []
    for trial in range(40):
        sample = rng.normal(0.0, 1.0, 200)
        low, high = bootstrap_interval(np.mean, sample, resamples=500, seed=trial)
        covered += low <= 0.0 <= high
        widths.append(high - low)
    assert covered >= 34  # 95% coverage: 38 of 40 expected, 34 is 2.6 sigma below
    assert np.mean(widths) == pytest.approx(2 * 1.96 / np.sqrt(200), rel=0.15)


def test_interval_of_precision_in_the_top_n_resamples_objects_together():
    rng = np.random.default_rng(1)
    relevant = np.zeros(500, bool)
    relevant[:25] = True

    def precision(rel, scores):
        return precision_at_k(rel, scores, max(1, int(rel.sum())))

    perfect = relevant + rng.uniform(0, 0.5, 500)  # every anomaly ranked first, in any resample
    assert bootstrap_interval(precision, relevant, perfect, resamples=200) == (1.0, 1.0)
    noisy = relevant * 0.8 + rng.uniform(0, 1, 500)  # anomalies only tend to rank high
    low, high = bootstrap_interval(precision, relevant, noisy, resamples=200)
    assert 0.0 < low < precision(relevant, noisy) < high < 1.0


def test_bad_bootstrap_inputs():
    with pytest.raises(ConfigError, match="lengths \\[3, 4\\]"):
        bootstrap_interval(np.mean, np.zeros(3), np.zeros(4))
    with pytest.raises(ConfigError, match="lengths \\[0\\]"):
        bootstrap_interval(np.mean, np.zeros(0))
    with pytest.raises(ConfigError, match="level"):
        bootstrap_interval(np.mean, np.zeros(3), level=1.5)
