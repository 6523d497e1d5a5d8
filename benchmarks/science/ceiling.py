"""How much redshift an encoder can carry: the S1 (or S2) encoder trained supervised on every train label.

S1 asks a self-supervised image embedding for kNN redshift R² >= 0.90, S2 a spectrum embedding for 0.99.
This measures the same encoder and fitted transforms (those of ``--model``, as S1's supervised baseline does;
or, with ``--config``, the architecture of a science config, its transforms fitted on the train split) trained
from scratch as a redshift regressor on 100% of the labelled train galaxies (those with a secure DESI-like
redshift, S1's and S2's sample; test R² of its predictions on that sample): a practical ceiling for what
that encoder extracts from the data at this resolution and depth, next to ``sim.colour_knn_z_r2`` (colours and
sizes only). Writes ``runs/science/s1-ceiling/results.json``
(``--modality spectrum``: ``s2-ceiling``; ``--no-record``: under ``runs/science/trials``) and records
``science.s1_image_supervised_ceiling_r2`` (``science.s2_spectrum_supervised_ceiling_r2``), context for S1 and
S2 with no target of its own.
Run: ``python -m benchmarks.science.ceiling [--modality spectrum] [--config galaxy-clip-cnn --no-record]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from astrofm.hub.pretrained import read_config
from benchmarks.science import common as C
from benchmarks.science.galaxies import supervised_r2

log = logging.getLogger("benchmarks.science.ceiling")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget")
    parser.add_argument("--fraction", type=float, default=1.0, help="fraction of the train labels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accelerator", default="cpu", help="Lightning accelerator to train on (cpu, gpu, auto)")
    parser.add_argument("--modality", default="image", choices=["image", "spectrum"])
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: 30 epochs, 300-1500)")
    parser.add_argument("--model", default="astrofm/hub/weights/astrofm-sim-small",
                        help="pretrained folder giving the architecture and fitted transforms (weights unused)")
    parser.add_argument("--config", default=None,
                        help="a config of configs/science giving the architecture instead of --model (e.g. "
                             "galaxy-clip-cnn); its transforms are fitted on the train split")
    parser.add_argument("--no-record", action="store_true",
                        help="a trial: record nothing; its results.json goes under runs/science/trials")
    args = parser.parse_args()
    C.setup(args.threads)
    C.use_accelerator(args.accelerator)
    C.use_root(None, "small")
    start = time.perf_counter()
    config = C.load_config("galaxy-clip")
    if args.config:
        source = f"configs/science/{args.config}.yaml"
        architecture = dict(C.load_config(args.config)["model"]["init_args"]["astrofm"])
    else:
        source = args.model
        architecture = dict(read_config(Path(args.model))["model"])
    labels = C.redshift_labels()
    r2, info = supervised_r2(config, architecture, labels, args.fraction, args.minutes, args.seed, args.modality,
                             args.steps)
    log.info("supervised %s encoder on %.0f%% of the train labels: test redshift R² %.4f (%s)", args.modality,
             100 * args.fraction, r2, info)
    folder = "s1-ceiling" if args.modality == "image" else "s2-ceiling"
    C.save_json(C.work_file(f"{folder}/results.json", args.no_record),
                {"r2": r2, "fraction": args.fraction, "modality": args.modality, "model": source, **info})
    if args.no_record:
        return
    from benchmarks.results import record

    key, target = C.redshift_context(args.modality, "supervised_ceiling_r2")
    record(key, r2, target=target, unit="R²",
           baseline=f"{C.redshift_context(args.modality, 'knn_z_r2')[0]} (the self-supervised embedding of the "
                    f"same encoder)",
           command="python -m benchmarks.science.ceiling " + " ".join(sys.argv[1:]),
           notes=f"the {args.modality} encoder of {source} (architecture and fitted transforms; galaxy-clip's "
                 f"encoder sizes) trained from scratch as a redshift regressor on {100 * args.fraction:.0f}% of the "
                 f"train galaxies' labels (those with the modality and a secure DESI-like redshift, ZWARN == 0), "
                 f"test R² of its predictions on such galaxies at the best validation loss; {info['steps']} steps "
                 f"in {info['wall_s']:.0f} s, {args.threads} threads",
           wall_s=round(time.perf_counter() - start, 1), seed=args.seed, training=info)


if __name__ == "__main__":
    main()
