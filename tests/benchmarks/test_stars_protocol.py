"""S3's protocol: each init fine-tunes at the learning rate its 10%-label run chose on val, not on test."""

from __future__ import annotations

from benchmarks.science.stars import FRACTIONS, GRID_FRACTION, INITS, MODALITIES, chosen_lr, grid_run, plan

GRID = (5e-4, 1e-3, 2e-3)


def grid_results(init: str, val: tuple[float, ...], test: tuple[float, ...]) -> dict[str, dict[str, float]]:
    return {grid_run(init, lr).key: {"best_val_acc": v, "test_accuracy": t}
            for lr, v, t in zip(GRID, val, test)}


def test_only_the_grids_are_planned_before_any_run_is_done() -> None:
    runs = plan({}, GRID)
    assert {(r.init, r.fraction, r.lr) for r in runs} == {(i, GRID_FRACTION, lr) for i in INITS for lr in GRID}


def test_the_learning_rate_is_chosen_on_val_and_used_at_every_other_fraction() -> None:
    # test accuracy would pick 5e-4, val picks 2e-3: the choice must not look at test
    done = grid_results("clip", val=(0.80, 0.85, 0.90), test=(0.95, 0.80, 0.70))
    assert chosen_lr(done, "clip", GRID) == 2e-3
    assert chosen_lr(done, "scratch", GRID) is None  # its grid has not run
    later = [r for r in plan(done, GRID) if r.fraction != GRID_FRACTION or r.modalities != ("lightcurve",)]
    assert {r.lr for r in later} == {2e-3}
    assert {(r.modalities, r.fraction) for r in later} == (
        {(("lightcurve",), f) for f in FRACTIONS if f != GRID_FRACTION}
        | {(("spectrum",), 1.0), (("tabular",), 1.0), (MODALITIES, 1.0)})
    assert all(r.init == "clip" for r in later)  # scratch's other fractions wait for its own grid


def test_an_incomplete_grid_chooses_nothing() -> None:
    done = grid_results("scratch", val=(0.7, 0.8, 0.9), test=(0.7, 0.8, 0.9))
    done.pop(grid_run("scratch", 2e-3).key)
    assert chosen_lr(done, "scratch", GRID) is None
