"""S3: the AstroM³ protocol on the simulated variable stars.

1. CLIP-pretrain light curves + LAMOST-like spectra + Gaia-like metadata (``configs/science/star-clip.yaml``).
2. Fine-tune a light-curve classifier (encoder + MLP head, ten AstroM³ classes) from the CLIP weights and
   from scratch (same architecture, same fitted transforms, same head initialization, same number of steps:
   ~20 epochs, 200 to 1,500 steps), on 1, 10, 25 and 100% of the labelled train stars (the same random subsets
   for both); the weights with the best validation accuracy are kept. Each init gets its own learning rate:
   the one of ``LR_GRID`` whose 10%-label run scores best on val, used at every other fraction. A single
   learning rate for both would favour whichever init it happens to suit.
3. Fine-tune from CLIP on each single modality and on all three together (100% of the labels, the CLIP init's
   learning rate).

With ``--model FOLDER`` a pretrained folder (e.g. the zoo model ``astrofm/hub/weights/astrofm-sim-small``, whose
light-curve, spectrum and tabular encoders were CLIP-pretrained together) replaces step 1. Each fine-tuning run
writes ``<workdir>/runs/<key>.json``; ``--resume`` keeps the runs already there and ``--only`` (comma-separated
key patterns, e.g. ``lightcurve-clip-*``) does a subset, so the benchmark can be spread over several processes
(``benchmarks/science/stars_gpu.sh`` does so on one GPU) and the figures recorded once every run is there.
Runs at the chosen learning rate appear once that init's 10%-label grid is complete.

Test accuracy is measured on the labelled (normal) stars of the test split, as in training. Figures are recorded
only when every run trained its planned steps (neither ``--max-steps`` below the protocol's 200 nor the time
cap cut one short), so that both inits of a fraction had the same budget. Figures:
``science.s3_lc_gain_at_10pct`` (CLIP minus scratch, accuracy points, 10% labels; the other fractions and the
learning-rate grid are recorded beside it) and ``science.s3_all_minus_best_single`` (all three modalities minus
the best single one, accuracy points). Run: ``python -m benchmarks.science.stars``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astrofm.hub.pretrained import load_pretrained
from astrofm.training import FineTuneModule, PretrainModule
from astrofm.utils.precision import inference_autocast
from benchmarks.science import common as C

log = logging.getLogger("benchmarks.science.stars")

CLASSES = ["EW", "SR", "EA", "RRAB", "EB", "ROT", "RRC", "HADS", "M", "DSCT"]
FRACTIONS = (0.01, 0.1, 0.25, 1.0)
MODALITIES = ("lightcurve", "spectrum", "tabular")
INITS = ("clip", "scratch")
#: Fine-tuning learning rates tried by each init at ``GRID_FRACTION`` of the labels; the best on val is kept.
LR_GRID = (5e-4, 1e-3, 2e-3, 4e-3)
GRID_FRACTION = 0.1
#: The fewest fine-tuning steps of the protocol (~20 epochs of the smallest label fraction).
PROTOCOL_MIN_STEPS = 200


@dataclass(frozen=True)
class Run:
    """One fine-tuning run of the protocol."""

    modalities: tuple[str, ...]
    init: str
    fraction: float
    lr: float

    @property
    def key(self) -> str:
        return f"{'+'.join(self.modalities)}-{self.init}-{self.fraction:g}-lr{self.lr:g}"


def pretrain(config: dict[str, Any], minutes: float, steps: int, model_dir: Path) -> dict[str, Any]:
    """CLIP pretraining for ``steps`` (or ``minutes``, whichever comes first); the model is saved to
    ``model_dir``."""
    data = C.data_module(config)
    module = PretrainModule(**config["model"]["init_args"])
    info = C.fit(module, data, name="star-clip", max_steps=steps, max_minutes=minutes)  # the cosine schedule spans them
    module.model.save_pretrained(model_dir)
    return info


@torch.no_grad()
def test_accuracy(module: FineTuneModule, data: Any, labelled: set[str]) -> float:
    """Accuracy on the labelled test objects (``labelled``: ids of normal stars with a class, as in training)
    that have every modality of the classifier."""
    module.eval()
    hits = total = 0
    for batch in data.loader("test", batch_size=256):
        with inference_autocast("cpu"):
            predicted, valid = module.predict_batch(batch)
        labels = np.asarray([str(v) for v in batch.targets["class"]])
        normal = np.array([i in labelled for i in batch.object_id])
        known = np.isin(labels, CLASSES) & valid.numpy() & normal
        expected = np.array([CLASSES.index(c) if c in CLASSES else -1 for c in labels])
        hits += int((predicted.numpy()[known] == expected[known]).sum())
        total += int(known.sum())
    return hits / max(total, 1)


def finetune(config: dict[str, Any], full: Any, model_dir: Path, run: Run, *, train_ids: np.ndarray,
             labelled: set[str], workdir: Path, max_steps: int, max_minutes: float, val_limit: int | None,
             seed: int) -> dict[str, Any]:
    """Fine-tune ``run``'s classifier on ``train_ids`` (``full``: the data module of every split); returns its test
    accuracy and run info."""
    architecture = load_pretrained(model_dir).config.to_dict()  # fitted transforms of the pretraining run
    manifest = C.subset_manifest(workdir / "splits" / f"{run.key}.json", full, train_ids, val_limit=val_limit)
    data = C.data_module(config, split=str(manifest), batch_size=64)
    epochs20 = math.ceil(20 * len(train_ids) / 64)
    steps = min(max_steps, int(np.clip(epochs20, PROTOCOL_MIN_STEPS, 1500)))  # ~20 epochs, both inits
    torch.manual_seed(seed)  # the same head initialization for both inits, whatever ran before in this process
    module = FineTuneModule(architecture, list(run.modalities), "class", classes=CLASSES,
                            init_from=str(model_dir) if run.init == "clip" else None,
                            optimizer={"lr": run.lr, "warmup_steps": 50, "weight_decay": 0.05})
    # logs and best-val checkpoints named by work folder too: the same run key may train in another one at once
    info = C.fit(module, data, name=f"{workdir.name}-{run.key}", max_steps=steps, max_minutes=max_minutes,
                 val_every=min(steps, max(25, steps // 8)), seed=seed)
    info.update(planned_steps=steps, lr=run.lr, test_accuracy=test_accuracy(module, data, labelled),
                n_train=len(train_ids), seed=seed)
    log.info("%s: test accuracy %.3f (%d labels, %d steps)", run.key, info["test_accuracy"], len(train_ids),
             info["steps"])
    return info


def grid_run(init: str, lr: float) -> Run:
    """The light-curve run at ``GRID_FRACTION`` of the labels that tries ``lr`` for ``init``."""
    return Run(("lightcurve",), init, GRID_FRACTION, lr)


def chosen_lr(done: dict[str, dict[str, Any]], init: str, grid: tuple[float, ...]) -> float | None:
    """The learning rate of ``grid`` whose light-curve run at ``GRID_FRACTION`` has the best val accuracy
    (None until every one of them is done)."""
    runs = [done.get(grid_run(init, lr).key) for lr in grid]
    if any(r is None for r in runs):
        return None
    return max(zip(grid, runs), key=lambda pair: pair[1]["best_val_acc"])[0]  # type: ignore[index]


def plan(done: dict[str, dict[str, Any]], grid: tuple[float, ...]) -> list[Run]:
    """Every run the protocol needs that can be named now: the learning-rate grids at ``GRID_FRACTION``, then
    each init's other fractions at its chosen rate, and the modality comparison at the CLIP init's."""
    runs = [grid_run(init, lr) for init in INITS for lr in grid]
    for init in INITS:
        lr = chosen_lr(done, init, grid)
        if lr is not None:
            runs += [Run(("lightcurve",), init, f, lr) for f in FRACTIONS if f != GRID_FRACTION]
            if init == "clip":
                runs += [Run(m, "clip", 1.0, lr) for m in (("spectrum",), ("tabular",), MODALITIES)]
    return runs


def load_done(workdir: Path) -> dict[str, dict[str, Any]]:
    """Run key -> result of the runs finished in ``workdir`` (by any process)."""
    return {p.stem: json.loads(p.read_text()) for p in sorted((workdir / "runs").glob("*.json"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is faster on a busy 2-core box)")
    parser.add_argument("--accelerator", default="cpu", help="Lightning accelerator to train on (cpu, gpu, auto)")
    parser.add_argument("--pretrain-minutes", type=float, default=22.0)
    parser.add_argument("--pretrain-steps", type=int, default=None,
                        help="CLIP pretraining steps (default: the config's max_steps)")
    parser.add_argument("--finetune-minutes", type=float, default=9.0, help="cap per fine-tuning run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="reuse a pretrained model from an earlier run")
    parser.add_argument("--root", default=None, help="another simulated universe (default: data/sim/small)")
    parser.add_argument("--preset", default="small", help="its simulator preset (simulated if missing)")
    parser.add_argument("--model", default=None, help="a pretrained folder to fine-tune from (skips pretraining)")
    parser.add_argument("--workdir", default=None, help="work folder (default runs/science/s3)")
    parser.add_argument("--only", default=None,
                        help="comma-separated run-key patterns to do now (e.g. 'lightcurve-clip-*'; one that matches "
                             "no key, e.g. 'none', only pretrains or records); default all")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in the work folder")
    parser.add_argument("--max-steps", type=int, default=1500,
                        help="cap on fine-tuning steps per run (the same for both inits)")
    parser.add_argument("--val-limit", type=int, default=None,
                        help="validate (checkpoint choice) on the first N val stars only; test is never cut")
    parser.add_argument("--lrs", type=float, nargs="+", default=list(LR_GRID),
                        help="the learning-rate grid each init chooses from on val")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    C.setup(args.threads)
    C.use_root(args.root, args.preset)
    C.use_accelerator(args.accelerator)
    config = C.load_config("star-clip")
    workdir = Path(args.workdir) if args.workdir else C.RUNS / "s3"
    grid = tuple(args.lrs)
    if args.model:
        model_dir = Path(args.model)
        pretrain_info: dict[str, Any] = {"model": str(model_dir)}
    else:
        model_dir = workdir / "star-clip-model"
        info_file = workdir / "pretrain.json"
        if not (args.reuse and model_dir.exists()):
            steps = args.pretrain_steps or config["trainer"]["max_steps"]
            C.save_json(info_file, pretrain(config, args.pretrain_minutes, steps, model_dir))
        pretrain_info = {"model": str(model_dir), **(json.loads(info_file.read_text()) if info_file.exists() else {})}

    data = C.data_module(config)
    labels = C.truth_labels("stars", "asassn_object_id", "class")
    train_ids = np.array([i for i in data.splits["train"].object_ids if labels.get(i) in CLASSES])
    order = np.random.default_rng(args.seed).permutation(len(train_ids))
    subsets = {f: train_ids[np.sort(order[: max(10, round(f * len(train_ids)))])] for f in FRACTIONS}
    labelled = set(labels)
    patterns = args.only.split(",") if args.only else ["*"]
    started: set[str] = set()
    if not args.resume:
        for stale in (workdir / "runs").glob("*.json"):
            stale.unlink()
    while True:  # the plan grows as each init's learning-rate grid completes
        done = load_done(workdir)
        todo = [r for r in plan(done, grid) if r.key not in done and r.key not in started
                and any(fnmatch.fnmatchcase(r.key, p) for p in patterns)]
        if not todo:
            break
        run = todo[0]
        started.add(run.key)
        result = finetune(config, data, model_dir, run, train_ids=subsets[run.fraction], labelled=labelled,
                          workdir=workdir, max_steps=args.max_steps, max_minutes=args.finetune_minutes,
                          val_limit=args.val_limit, seed=args.seed)
        C.save_json(workdir / "runs" / f"{run.key}.json", result)

    done = load_done(workdir)
    runs = plan(done, grid)
    missing = [r.key for r in runs if r.key not in done]
    if missing:
        log.info("runs still missing %s: figures not recorded", missing)
        return
    record_figures(args, done, runs, grid, model_dir, pretrain_info, workdir)


def record_figures(args: argparse.Namespace, done: dict[str, dict[str, Any]], runs: list[Run],
                   grid: tuple[float, ...], model_dir: Path, pretrain_info: dict[str, Any], workdir: Path) -> None:
    """Summarize the finished protocol in ``<workdir>/results.json`` and record its two figures."""
    lrs = {init: chosen_lr(done, init, grid) for init in INITS}
    lc = {(r.init, r.fraction): done[r.key]["test_accuracy"] for r in runs
          if r.modalities == ("lightcurve",) and r.lr == lrs[r.init]}
    curve = {f"{f:g}": {init: lc[init, f] for init in INITS} for f in FRACTIONS}
    gains = {f: round(100 * (v["clip"] - v["scratch"]), 2) for f, v in curve.items()}
    lr_grid = {f"{lr:g}": {init: {"test": round(done[grid_run(init, lr).key]["test_accuracy"], 4),
                                  "best_val": round(done[grid_run(init, lr).key]["best_val_acc"], 4)}
                           for init in INITS} for lr in grid}
    singles = {m: done[Run((m,), "clip", 1.0, lrs["clip"]).key]["test_accuracy"]  # type: ignore[arg-type]
               for m in MODALITIES}
    best_single = max(singles, key=singles.get)  # type: ignore[arg-type]
    all_three = done[Run(MODALITIES, "clip", 1.0, lrs["clip"]).key]["test_accuracy"]  # type: ignore[arg-type]
    wall = sum(done[r.key].get("wall_s", 0.0) for r in runs)  # fine-tuning wall time over all processes
    devices = sorted({done[r.key].get("device", "cpu") for r in runs})
    log.info("accuracy curve %s; gains %s; learning rates %s; singles %s; all three %.3f", curve, gains, lrs,
             singles, all_three)
    C.save_json(workdir / "results.json", {"pretrain": pretrain_info, "curve": curve, "gains": gains,
                                           "learning_rates": lrs, "lr_grid": lr_grid, "singles": singles,
                                           "all_three": all_three, "runs": {r.key: done[r.key] for r in runs}})
    if args.no_record:
        return
    unequal = {r.key: f"{done[r.key]['steps']} of {done[r.key]['planned_steps']} steps"
               + (" (fewer labels than one batch of 64: no training batch)" if done[r.key]["n_train"] < 64
                  else " (time cap)")
               for r in runs if done[r.key]["steps"] != done[r.key]["planned_steps"]}
    if unequal or args.max_steps < PROTOCOL_MIN_STEPS:
        log.warning("not recorded: the protocol trains every run its planned steps (~20 epochs, at least %d); "
                    "runs that did not: %s; --max-steps %d", PROTOCOL_MIN_STEPS, unequal, args.max_steps)
        return
    from benchmarks.results import record

    where = (f"fine-tuned on {', '.join(devices)}; pretrained folder {model_dir} ("
             + (f"CLIP-pretrained {pretrain_info['steps']} steps in {pretrain_info['wall_s']:.0f} s on "
                f"{pretrain_info['device']})" if "steps" in pretrain_info else "given)")
             + f"; seed {args.seed}; fine-tuning wall {wall:.0f} s over all processes (each run made by a "
             f"`python -m benchmarks.science.stars --workdir {workdir} --resume --only KEY` process; "
             "benchmarks/science/stars_gpu.sh starts them on a GPU)")
    # the runs may come from other processes (``--only``): only what the protocol fixes is recorded with them
    common = {"seed": args.seed, "wall_s": round(wall, 1), "max_steps": args.max_steps,
              "val_limit": args.val_limit, "devices": devices,
              "learning_rates": {i: f"{lr:g}" for i, lr in lrs.items()},  # type: ignore[str-format]
              "command": "python -m benchmarks.science.stars " + " ".join(sys.argv[1:]),
              "pretrain": pretrain_info, "test_stars": "labelled stars of the test split"}
    record("science.s3_lc_gain_at_10pct", gains["0.1"], target=">= 5", unit="accuracy points",
           baseline="the same light-curve encoder + head trained from scratch on the same 10% of labels, each init "
                    "at its own val-chosen learning rate",
           notes=("light-curve classifier test accuracy, CLIP-pretrained vs scratch, by label fraction: "
                  + "; ".join(f"{f}: {v['clip']:.3f} vs {v['scratch']:.3f} ({gains[f]:+.1f})"
                              for f, v in curve.items())
                  + f"; positive at every fraction: {all(g > 0 for g in gains.values())}; learning rate chosen on "
                  f"val at 10% of labels: CLIP {lrs['clip']:g}, scratch {lrs['scratch']:g}; 10% grid test accuracy "
                  "(best val): " + "; ".join(f"lr {lr}: CLIP {v['clip']['test']:.3f} ({v['clip']['best_val']:.3f}),"
                                             f" scratch {v['scratch']['test']:.3f} ({v['scratch']['best_val']:.3f})"
                                             for lr, v in lr_grid.items())
                  + "; steps per run (device): " + ", ".join(f"{r.key} {done[r.key]['steps']} ({done[r.key]['device']})"
                                                             for r in runs)
                  + "; " + where),
           curve=curve, gains=gains, lr_grid=lr_grid, **common)
    record("science.s3_all_minus_best_single", 100 * (all_three - singles[best_single]), target="> 0",
           unit="accuracy points", baseline=f"best single modality fine-tuned from CLIP ({best_single})",
           notes=("test accuracy with 100% labels, fine-tuned from CLIP at its learning rate "
                  f"{lrs['clip']:g}: all three {all_three:.3f}; "
                  + ", ".join(f"{m} {a:.3f}" for m, a in singles.items()) + "; " + where),
           singles=singles, all_three=all_three, **common)
    if args.model:
        C.update_card(model_dir, {"science.s3_lc_gain_at_10pct": gains["0.1"],
                                  "science.s3_all_minus_best_single": 100 * (all_three - singles[best_single])})


if __name__ == "__main__":
    main()
