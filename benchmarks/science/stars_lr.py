"""S3 sensitivity: the 10%-label gain when each init fine-tunes at its own learning rate, chosen on val.

The S3 protocol (``benchmarks.science.stars``) fine-tunes both inits at one learning rate. This reads the protocol's
work folder and trial folders of ``stars --lr LR --no-record --only lightcurve-clip-0.1,lightcurve-scratch-0.1``,
picks each init's learning rate by its best validation accuracy, and adds the grid, the choice and the resulting
gain to ``science.s3_lc_gain_at_10pct`` (``met`` becomes false when the chosen-lr gain misses the target).
Run: ``python -m benchmarks.science.stars_lr --protocol runs/science/s3-zoo3 --trials runs/science/trials/s3-lr*``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.results import amend, command_line, load
from benchmarks.science.stars import PROTOCOL_LR

KEY = "science.s3_lc_gain_at_10pct"
INITS = ("clip", "scratch")


def runs_by_lr(folders: list[Path]) -> dict[float, dict[str, dict[str, Any]]]:
    """Learning rate -> init -> test accuracy, best val accuracy and steps of the 10% light-curve runs."""
    grid: dict[float, dict[str, dict[str, Any]]] = {}
    for folder in folders:
        results = json.loads((folder / "results.json").read_text())
        for init in INITS:
            run = results.get(f"lightcurve-{init}-0.1")
            if isinstance(run, dict) and "test_accuracy" in run:
                grid.setdefault(run.get("lr", PROTOCOL_LR), {})[init] = {
                    "test": round(run["test_accuracy"], 4), "best_val": round(run["best_val_acc"], 4),
                    "steps": run["steps"]}
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", required=True, help="work folder of the recorded S3 run")
    parser.add_argument("--trials", nargs="+", required=True, help="work folders of the --lr trials")
    args = parser.parse_args()
    grid = runs_by_lr([Path(args.protocol), *map(Path, args.trials)])
    chosen = {init: max((lr for lr in grid if init in grid[lr]), key=lambda lr: grid[lr][init]["best_val"])
              for init in INITS}
    gain = round(100 * (grid[chosen["clip"]]["clip"]["test"] - grid[chosen["scratch"]]["scratch"]["test"]), 2)
    recorded = load()[KEY]
    met = bool(recorded["met"]) and gain >= float(recorded["target"].lstrip(">= "))
    amend(KEY, met=met, sensitivity={"learning_rates": {f"{lr:g}": runs for lr, runs in sorted(grid.items())},
                                     "val_chosen_lr": {init: f"{lr:g}" for init, lr in chosen.items()},
                                     "gain_with_val_chosen_lr": gain, "command": command_line()},
          notes=("LEARNING-RATE SENSITIVITY (10% labels, test accuracy with best val in brackets): "
                 + "; ".join(f"lr {lr:g}: " + ", ".join(f"{'CLIP' if i == 'clip' else i} {r['test']:.3f} "
                                                        f"({r['best_val']:.3f})" for i, r in runs.items())
                             for lr, runs in sorted(grid.items()))
                 + f". With each init's lr chosen on val ({ {i: f'{lr:g}' for i, lr in chosen.items()} }) the gain is "
                 f"{gain:+.2f} points" + ("" if met else f": met is false although the protocol value (one lr, "
                                                         f"{PROTOCOL_LR:g}) is {recorded['value']}")))
    print(f"gain with val-chosen learning rates {gain:+.2f} points; met {met}")


if __name__ == "__main__":
    main()
