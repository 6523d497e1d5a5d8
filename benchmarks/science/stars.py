"""S3: the AstroM³ protocol on the simulated variable stars.

1. CLIP-pretrain light curves + LAMOST-like spectra + Gaia-like metadata (``configs/science/star-clip.yaml``).
2. Fine-tune a light-curve classifier (encoder + MLP head, ten AstroM³ classes) from the CLIP weights and
   from scratch (same architecture, same fitted transforms, same optimizer and number of steps: ~20
   epochs, 200 to 1,500 steps), on 1, 10, 25 and 100% of the labelled train stars (the same random
   subsets for both); the weights with the best validation accuracy are kept.
3. Fine-tune from CLIP on each single modality and on all three together (100% of the labels).

With ``--model FOLDER`` a pretrained folder (e.g. the zoo model ``astrofm/hub/weights/astrofm-sim-small``, whose
light-curve, spectrum and tabular encoders were CLIP-pretrained together) replaces step 1. ``--only`` runs a
subset of the fine-tuning runs; runs already in ``results.json`` of the work folder are kept (``--resume``), so
the benchmark can be spread over several processes and the figures recorded once every run is there.

Test accuracy is measured on the labelled (normal) stars of the test split, as in training. Figures are recorded
only when every run trained its planned steps (neither ``--max-steps`` below the protocol's 200 nor the time
cap cut one short), so that both inits of a fraction had the same budget. Figures:
``science.s3_lc_gain_at_10pct`` (CLIP minus scratch, accuracy points, 10% labels; the other fractions are
recorded beside it) and ``science.s3_all_minus_best_single`` (all three modalities minus the best single
one, accuracy points). Run: ``python -m benchmarks.science.stars``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astrofm.hub.pretrained import load_pretrained
from astrofm.training import FineTuneModule, PretrainModule
from benchmarks.science import common as C

log = logging.getLogger("benchmarks.science.stars")

CLASSES = ["EW", "SR", "EA", "RRAB", "EB", "ROT", "RRC", "HADS", "M", "DSCT"]
FRACTIONS = (0.01, 0.1, 0.25, 1.0)
MODALITIES = ("lightcurve", "spectrum", "tabular")
MAX_STEPS = 1500
#: The fewest fine-tuning steps of the protocol (~20 epochs of the smallest label fraction).
PROTOCOL_MIN_STEPS = 200
VAL_LIMIT: int | None = None
#: The protocol's fine-tuning learning rate, the same for both inits.
PROTOCOL_LR = 5e-4


def pretrain(config: dict[str, Any], minutes: float, model_dir: Path) -> dict[str, Any]:
    """CLIP pretraining within the time budget; the model is saved to ``model_dir``."""
    data = C.data_module(config)
    module = PretrainModule(**config["model"]["init_args"])
    info = C.fit(module, data, name="star-clip", max_steps=config["trainer"]["max_steps"], max_minutes=minutes)
    module.model.save_pretrained(model_dir)
    return info


@torch.no_grad()
def test_accuracy(module: FineTuneModule, data: Any, labelled: set[str]) -> float:
    """Accuracy on the labelled test objects (``labelled``: ids of normal stars with a class, as in training)
    that have every modality of the classifier."""
    module.eval()
    hits = total = 0
    for batch in data.loader("test", batch_size=256):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            predicted, valid = module.predict_batch(batch)
        labels = np.asarray([str(v) for v in batch.targets["class"]])
        normal = np.array([i in labelled for i in batch.object_id])
        known = np.isin(labels, CLASSES) & valid.numpy() & normal
        expected = np.array([CLASSES.index(c) if c in CLASSES else -1 for c in labels])
        hits += int((predicted.numpy()[known] == expected[known]).sum())
        total += int(known.sum())
    return hits / max(total, 1)


def finetune(config: dict[str, Any], model_dir: Path, modalities: list[str], *, pretrained: bool,
             train_ids: np.ndarray, labelled: set[str], name: str, workdir: Path, max_minutes: float,
             seed: int, lr: float = PROTOCOL_LR) -> dict[str, Any]:
    """Fine-tune a classifier on ``train_ids``; returns its test accuracy and run info."""
    architecture = load_pretrained(model_dir).config.to_dict()  # fitted transforms of the pretraining run
    manifest = C.subset_manifest(workdir / f"{name}.json", C.data_module(config), train_ids, val_limit=VAL_LIMIT)
    data = C.data_module(config, split=str(manifest), batch_size=64)
    epochs20 = math.ceil(20 * len(train_ids) / 64)
    steps = min(MAX_STEPS, int(np.clip(epochs20, PROTOCOL_MIN_STEPS, 1500)))  # ~20 epochs, both inits
    torch.manual_seed(seed)  # the same head initialization for both inits, whatever ran before in this process
    module = FineTuneModule(architecture, modalities, "class", classes=CLASSES,
                            init_from=str(model_dir) if pretrained else None,
                            optimizer={"lr": lr, "warmup_steps": 50, "weight_decay": 0.05})
    # logs and best-val checkpoints named by work folder too: the same run key may train in another one at once
    info = C.fit(module, data, name=f"{workdir.name}-{name}", max_steps=steps, max_minutes=max_minutes,
                 val_every=max(25, steps // 8))
    info["planned_steps"] = steps
    info["lr"] = lr
    info["test_accuracy"] = test_accuracy(module, data, labelled)
    info["n_train"] = len(train_ids)
    log.info("%s: test accuracy %.3f (%d labels, %d steps)", name, info["test_accuracy"], len(train_ids),
             info["steps"])
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is faster on a busy 2-core box)")
    parser.add_argument("--pretrain-minutes", type=float, default=22.0)
    parser.add_argument("--finetune-minutes", type=float, default=9.0, help="cap per fine-tuning run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="reuse a pretrained model from an earlier run")
    parser.add_argument("--root", default=None, help="another simulated universe (default: data/sim/small)")
    parser.add_argument("--preset", default="small", help="its simulator preset (simulated if missing)")
    parser.add_argument("--model", default=None, help="a pretrained folder to fine-tune from (skips pretraining)")
    parser.add_argument("--workdir", default=None, help="work folder (default runs/science/s3)")
    parser.add_argument("--only", default=None,
                        help="comma-separated run keys to do now (e.g. lightcurve-scratch-0.1); default all")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in the work folder")
    parser.add_argument("--max-steps", type=int, default=1500,
                        help="cap on fine-tuning steps per run (the same for both inits)")
    parser.add_argument("--val-limit", type=int, default=None,
                        help="validate (checkpoint choice) on the first N val stars only; test is never cut")
    parser.add_argument("--lr", type=float, default=PROTOCOL_LR,
                        help="fine-tuning learning rate of both inits (a sensitivity check: figures are recorded only "
                             "when every run used the protocol's)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    C.setup(args.threads)
    C.use_root(args.root, args.preset)
    start = time.perf_counter()
    config = C.load_config("star-clip")
    workdir = Path(args.workdir) if args.workdir else C.RUNS / "s3"
    if args.model:
        model_dir = Path(args.model)
        pretrain_info: dict[str, Any] = {"model": str(model_dir)}
    else:
        model_dir = workdir / "star-clip-model"
        pretrain_info = ({} if args.reuse and model_dir.exists()
                         else pretrain(config, args.pretrain_minutes, model_dir))
    global MAX_STEPS, VAL_LIMIT
    MAX_STEPS, VAL_LIMIT = args.max_steps, args.val_limit

    data = C.data_module(config)
    labels = C.truth_labels("stars", "asassn_object_id", "class")
    train_ids = np.array([i for i in data.splits["train"].object_ids if labels.get(i) in CLASSES])
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(train_ids))
    results: dict[str, Any] = {"pretrain": pretrain_info}
    if args.resume and (workdir / "results.json").exists():
        results = {**json.loads((workdir / "results.json").read_text()), **results}
    only = set(args.only.split(",")) if args.only else None
    runs: list[tuple[str, list[str], bool, np.ndarray]] = []
    for fraction in FRACTIONS:
        subset = train_ids[np.sort(order[: max(10, round(fraction * len(train_ids)))])]
        for pretrained in (True, False):
            runs.append((f"lightcurve-{'clip' if pretrained else 'scratch'}-{fraction:g}", ["lightcurve"],
                         pretrained, subset))
    for modalities in (["spectrum"], ["tabular"], list(MODALITIES)):
        runs.append((f"{'+'.join(modalities)}-clip-1", modalities, True, train_ids))
    for key, modalities, pretrained, subset in runs:
        if (only is not None and key not in only) or (only is None and isinstance(results.get(key), dict)
                                                      and "test_accuracy" in results[key]):
            continue
        results[key] = finetune(config, model_dir, modalities, pretrained=pretrained, train_ids=subset,
                                labelled=set(labels), name=key, workdir=workdir, max_minutes=args.finetune_minutes,
                                seed=args.seed, lr=args.lr)
        results[key]["seed"] = args.seed
        if args.resume and (workdir / "results.json").exists():  # another process may have added runs
            results = {**json.loads((workdir / "results.json").read_text()), **results}
        C.save_json(workdir / "results.json", results)
    wall = time.perf_counter() - start
    missing = [k for k, *_ in runs if not (isinstance(results.get(k), dict) and "test_accuracy" in results[k])]
    if missing:
        log.info("runs still missing %s: figures not recorded", missing)
        return
    wall = sum(results[k].get("wall_s", 0.0) for k, *_ in runs)  # fine-tuning wall time over all processes

    curve = {f"{f:g}": {"clip": results[f"lightcurve-clip-{f:g}"]["test_accuracy"],
                        "scratch": results[f"lightcurve-scratch-{f:g}"]["test_accuracy"]} for f in FRACTIONS}
    gains = {f: round(100 * (v["clip"] - v["scratch"]), 2) for f, v in curve.items()}
    singles = {m: results[f"{m}-clip-1" if m != "lightcurve" else "lightcurve-clip-1"]["test_accuracy"]
               for m in MODALITIES}
    best_single = max(singles, key=singles.get)  # type: ignore[arg-type]
    all_three = results["lightcurve+spectrum+tabular-clip-1"]["test_accuracy"]
    log.info("accuracy curve %s; gains %s; singles %s; all three %.3f", curve, gains, singles, all_three)
    C.save_json(workdir / "results.json", {**results, "curve": curve, "gains": gains, "singles": singles})
    if args.no_record:
        return
    unequal = [k for k, *_ in runs if results[k]["steps"] != results[k].get("planned_steps", results[k]["steps"])]
    other_lr = [k for k, *_ in runs if results[k].get("lr", PROTOCOL_LR) != PROTOCOL_LR]
    if other_lr:
        log.warning("not recorded: runs %s fine-tuned at another learning rate than the protocol's %g", other_lr,
                    PROTOCOL_LR)
        return
    if unequal or args.max_steps < PROTOCOL_MIN_STEPS:
        log.warning("not recorded: the protocol trains every run its planned steps (~20 epochs, at least %d); "
                    "runs stopped early by the time cap: %s; --max-steps %d", PROTOCOL_MIN_STEPS, unequal,
                    args.max_steps)
        return
    from benchmarks.results import record

    common = {"seed": args.seed, "wall_s": round(wall, 1), "threads": args.threads, "max_steps": args.max_steps,
              "val_limit": args.val_limit,
              "finetune_minutes": args.finetune_minutes,
              "command": "python -m benchmarks.science.stars " + " ".join(sys.argv[1:]),
              "pretrain": pretrain_info, "test_stars": "labelled stars of the test split"}
    record("science.s3_lc_gain_at_10pct", gains["0.1"], target=">= 5", unit="accuracy points",
           baseline="the same light-curve encoder + head trained from scratch on the same 10% of labels",
           notes=("light-curve classifier test accuracy, CLIP-pretrained vs scratch, by label fraction: "
                  + "; ".join(f"{f}: {v['clip']:.3f} vs {v['scratch']:.3f} ({gains[f]:+.1f})"
                              for f, v in curve.items())
                  + f"; positive at every fraction: {all(g > 0 for g in gains.values())}; steps per run (capped by "
                  f"--max-steps {args.max_steps} and {args.finetune_minutes} min each): "
                  + ", ".join(f"{k} {results[k]['steps']}" for k, *_ in runs)
                  + f"; pretrained folder {model_dir}; seed {args.seed}; fine-tuning wall {wall:.0f} s"),
           curve=curve, gains=gains, **common)
    record("science.s3_all_minus_best_single", 100 * (all_three - singles[best_single]), target="> 0",
           unit="accuracy points", baseline=f"best single modality fine-tuned from CLIP ({best_single})",
           notes=("test accuracy with 100% labels, fine-tuned from CLIP: all three "
                  f"{all_three:.3f}; " + ", ".join(f"{m} {a:.3f}" for m, a in singles.items())
                  + f"; steps: all three {results['lightcurve+spectrum+tabular-clip-1']['steps']}, "
                  + ", ".join(f"{m} {results[m + '-clip-1']['steps']}" for m in MODALITIES)
                  + f"; pretrained folder {model_dir}; seed {args.seed}"),
           singles=singles, all_three=all_three, **common)
    if args.model:
        C.update_card(model_dir, {"science.s3_lc_gain_at_10pct": gains["0.1"],
                                  "science.s3_all_minus_best_single": 100 * (all_three - singles[best_single])})


if __name__ == "__main__":
    main()
