"""Fixed-radius queries against brute force: embedding space and the sky (poles, RA = 0/360)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from astrofm.downstream.radius import RadiusSearch, angular_distance
from astrofm.errors import ConfigError, DataFormatError


def _brute_within(d: np.ndarray, low: float, high: float, inclusive: bool) -> list[np.ndarray]:
    out = []
    for row in d:
        keep = (row >= low) & ((row <= high) if inclusive else (row < high))
        idx = np.flatnonzero(keep)
        out.append(idx[np.lexsort((idx, row[idx]))])
    return out


@pytest.fixture(scope="module")
def sky():
    """Points crowded near both poles and across RA = 0/360, plus some everywhere."""
    rng = np.random.default_rng(0)
    near_north = np.c_[rng.uniform(0, 360, 300), rng.uniform(89.9, 90, 300)]
    near_south = np.c_[rng.uniform(0, 360, 300), rng.uniform(-90, -89.9, 300)]
    wrap = np.c_[np.mod(rng.normal(0, 0.02, 600), 360), rng.normal(10, 0.02, 600)]
    anywhere = np.c_[rng.uniform(0, 360, 800), np.degrees(np.arcsin(rng.uniform(-1, 1, 800)))]
    points = np.vstack([near_north, near_south, wrap, anywhere])
    centres = np.array([[0.0, 90.0], [123.0, -89.97], [359.995, 10.0], [0.004, 10.01], [200.0, 30.0],
                        [10.0, 89.95]])
    return points, centres


@pytest.mark.parametrize("metric", ["haversine", "vincenty"])
def test_sky_queries_match_brute_force(sky, metric):
    points, centres = sky
    search = RadiusSearch(points, metric=metric)
    d = angular_distance(centres[:, None, 0], centres[:, None, 1], points[None, :, 0], points[None, :, 1],
                         method=metric)
    radius = 180.0  # arcsec
    distances, indices = search.bubble(centres, radius)
    for got, ref, dist in zip(indices, _brute_within(d, -np.inf, radius, True), distances):
        np.testing.assert_array_equal(got, ref)
        assert (np.diff(dist) >= 0).all()
    assert sum(len(i) for i in indices[:4]) > 40  # the pole and wrap-around centres do have neighbours
    shell = search.shell(centres, 60.0, 240.0)[1]
    for got, ref in zip(shell, _brute_within(d, 60.0, 240.0, False)):
        np.testing.assert_array_equal(got, ref)
    near_d, near_i = search.nearest(centres, 5)
    np.testing.assert_array_equal(near_i, np.argsort(d, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(near_d, np.sort(d, axis=1)[:, :5])


def test_wrap_around_neighbours_and_formulas_agree():
    search = RadiusSearch(np.array([[359.9999, 0.0], [0.0001, 0.0], [180.0, 0.0]]), metric="vincenty")
    distances, indices = search.bubble([[0.0, 0.0]], 1.0)
    assert sorted(indices[0].tolist()) == [0, 1]
    np.testing.assert_allclose(distances[0], [0.36, 0.36], rtol=1e-6)
    rng = np.random.default_rng(3)
    a, b = rng.uniform([0, -90], [360, 90], (500, 2)), rng.uniform([0, -90], [360, 90], (500, 2))
    reference = SkyCoord(a[:, 0], a[:, 1], unit="deg").separation(SkyCoord(b[:, 0], b[:, 1], unit="deg")).arcsec
    np.testing.assert_allclose(angular_distance(a[:, 0], a[:, 1], b[:, 0], b[:, 1]), reference, rtol=1e-10)
    np.testing.assert_allclose(angular_distance(a[:, 0], a[:, 1], b[:, 0], b[:, 1], method="haversine"), reference,
                               rtol=1e-6)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_embedding_queries_match_brute_force(metric):
    rng = np.random.default_rng(1)
    points, centres = rng.normal(size=(2000, 12)), rng.normal(size=(25, 12))
    if metric == "euclidean":
        d = np.sqrt(((centres[:, None] - points[None]) ** 2).sum(-1))
        low, high = 3.0, 4.0
    else:
        unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
        d = 1 - unit(centres) @ unit(points).T
        low, high = 0.2, 0.4
    search = RadiusSearch(points, metric=metric, batch_size=7, chunk_size=300)
    whole = RadiusSearch(points, metric=metric)
    for got, every in zip(search.bubble(centres, high)[1], whole.bubble(centres, high)[1]):
        np.testing.assert_array_equal(got, every)  # chunk sizes do not matter
    for got, ref in zip(search.bubble(centres, high)[1], _brute_within(d, -np.inf, high, True)):
        np.testing.assert_array_equal(got, ref)
    for got, ref in zip(search.shell(centres, low, high)[1], _brute_within(d, low, high, False)):
        np.testing.assert_array_equal(got, ref)
    near_d, near_i = search.nearest(centres, 4)
    np.testing.assert_array_equal(near_i, np.argsort(d, axis=1)[:, :4])
    np.testing.assert_allclose(near_d, np.sort(d, axis=1)[:, :4], atol=1e-9)
    per_centre = search.bubble(centres[:3], [0.0, high, 100.0])[1]
    assert len(per_centre[0]) == 0 and len(per_centre[2]) == len(points)


def test_radius_inputs_are_checked():
    with pytest.raises(DataFormatError, match="invalid sky position"):
        RadiusSearch(np.array([[10.0, 95.0]]), metric="haversine")
    with pytest.raises(DataFormatError, match=r"\(n, 2\)"):
        RadiusSearch(np.zeros((3, 3)), metric="vincenty")
    search = RadiusSearch(np.zeros((3, 4)))
    with pytest.raises(DataFormatError, match="dimension mismatch"):
        search.bubble(np.zeros((1, 5)), 1.0)
    with pytest.raises(ConfigError, match="r_min <= r_max"):
        search.shell(np.zeros((1, 4)), 2.0, 1.0)
    with pytest.raises(ConfigError, match="n must lie"):
        search.nearest(np.zeros((1, 4)), 4)
    with pytest.raises(ConfigError, match="metric"):
        RadiusSearch(np.zeros((3, 4)), metric="chebyshev")


def test_points_at_the_radius_are_inside():
    rng = np.random.default_rng(1)
    points = (rng.normal(size=(200, 16)) * 3 + 10).astype(np.float32)  # far from 0: the matmul form rounds
    centres = (rng.normal(size=(50, 16)) * 3 + 10).astype(np.float32)
    exact = np.sqrt(((centres[:, None].astype(np.float64) - points[None]) ** 2).sum(-1))
    _, inside = RadiusSearch(points).bubble(centres, np.sort(exact, axis=1)[:, 4])
    assert [len(i) for i in inside] == [5] * 50
    for metric in ("euclidean", "cosine"):
        search = RadiusSearch(points, metric=metric)
        near_d, near_i = search.nearest(centres, 5)
        distances, inside = search.bubble(centres, near_d[:, -1])
        np.testing.assert_array_equal(np.stack(inside), near_i)
        np.testing.assert_array_equal(np.stack(distances), near_d)


def test_cosine_distances_of_close_pairs_keep_their_digits():
    search = RadiusSearch(np.array([[1.0, 1e-8]]), metric="cosine")  # 1 - cos θ = 5e-17
    distances, _ = search.nearest([[1.0, 0.0]], 1)
    assert distances[0, 0] == pytest.approx(5e-17, rel=1e-6)
    assert len(search.bubble([[1.0, 0.0]], 4e-17)[1][0]) == 0
    assert len(search.bubble([[1.0, 0.0]], 6e-17)[1][0]) == 1
