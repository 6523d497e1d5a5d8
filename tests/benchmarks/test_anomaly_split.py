"""S5's bound on ranking two populations together: the best split of the top N, each by its own ranking."""

from __future__ import annotations

import numpy as np

from benchmarks.science.anomalies import best_split, found_curve


def test_found_curve_counts_relevant_objects_from_the_top_and_stays_flat_past_the_end() -> None:
    relevant = np.array([False, True, True, False])
    scores = np.array([0.9, 0.8, 0.1, 0.5])  # ranking: 0, 1, 3, 2
    assert found_curve(relevant, scores, 6).tolist() == [0, 0, 1, 1, 2, 2, 2]


def test_best_split_beats_a_common_scale_that_favours_one_population() -> None:
    galaxies = np.array([1, 1, 0, 0, 0], bool)  # relevant objects, each population ranked in this order
    stars = np.array([1, 1, 0, 0, 0], bool)
    rank = -np.arange(5.0)
    found, shares = best_split({"galaxies": found_curve(galaxies, rank, 4), "stars": found_curve(stars, rank, 4)}, 4)
    assert (found, shares) == (4, {"galaxies": 2, "stars": 2})
    # a common scale that puts every galaxy above every star finds 2 in the top 4
    joint = np.concatenate([galaxies, stars])
    assert found_curve(joint, np.concatenate([10 + rank, rank]), 4)[4] == 2


def test_best_split_of_three_populations_equals_brute_force() -> None:
    rng = np.random.default_rng(1)
    curves = {name: found_curve(rng.random(12) < 0.3, rng.random(12), 8) for name in "abc"}
    brute = max(curves["a"][i] + curves["b"][j] + curves["c"][8 - i - j] for i in range(9) for j in range(9 - i))
    found, shares = best_split(curves, 8)
    assert found == brute and sum(shares.values()) == 8
    assert sum(int(curves[k][v]) for k, v in shares.items()) == found
