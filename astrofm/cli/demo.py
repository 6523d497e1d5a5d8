"""``astrofm demo --root DIR``: the whole mission on the simulated universe, with a self-contained report."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="simulate, embed, probe, search, rank anomalies, map and generate: a report in DIR",
        description="Run the whole pipeline on the simulated universe and write DIR/report.html (every figure "
                    "inline), DIR/*.png and DIR/metrics.json. Finished steps are skipped on a rerun.",
    )
    parser.add_argument("--root", required=True, type=Path, help="output folder (created; a rerun resumes it)")
    parser.add_argument("--preset", default="small", choices=("tiny", "small"),
                        help="simulated universe size (default small)")
    parser.add_argument("--model", default="astrofm-sim-small",
                        help="registry name, folder, URL or hub id of an AstroFM model (default astrofm-sim-small)")
    parser.add_argument("--train", action="store_true", help="train an all-modalities model from scratch instead")
    parser.add_argument("--config", type=Path, help="with --train: a LightningCLI YAML whose model to train")
    parser.add_argument("--train-minutes", type=float, help="with --train: training budget in minutes")
    parser.add_argument("--universe", type=Path,
                        help="folder of the simulated universe (default DIR/universe; an existing one is reused)")
    parser.add_argument("--workers", type=int, default=2, help="simulation worker processes (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from astrofm.demo import DemoOptions, run_demo
    from astrofm.errors import ConfigError

    if (args.config or args.train_minutes is not None) and not args.train:
        raise ConfigError("--config and --train-minutes go with --train")
    if logging.getLogger().level > logging.INFO:  # the demo reports its steps unless asked to be quiet
        logging.getLogger("astrofm.demo").setLevel(logging.INFO)
    options = DemoOptions(root=args.root, preset=args.preset, model=args.model, train=args.train, seed=args.seed,
                          universe=args.universe, config=args.config, train_minutes=args.train_minutes,
                          workers=args.workers, progress=not args.no_progress)
    run_demo(options)
    return 0
