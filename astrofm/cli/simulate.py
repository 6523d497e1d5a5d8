"""``astrofm simulate``: write the simulated universe (MMU datasets, truth catalog, split manifest)."""

from __future__ import annotations

import argparse
from typing import Any

_PRESETS = ("tiny", "small", "large")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate", help="write the simulated universe: MMU-format datasets with a truth catalog and splits"
    )
    parser.add_argument("--root", required=True, help="output folder (resumed if it holds an unfinished run)")
    parser.add_argument("--preset", default="tiny", choices=_PRESETS,
                        help="tiny: 2k objects (tests); small: 20k galaxies + 20k stars; large: 200k objects")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1); data do not depend on it")
    parser.add_argument("--image-size", type=int, help="cutout side in pixels (default 64; 160 as in MMU)")
    parser.add_argument("--n-galaxies", type=int, help="number of galaxies (overrides the preset)")
    parser.add_argument("--n-stars", type=int, help="number of stars (overrides the preset)")
    parser.add_argument("--galaxies-per-shard", type=int, help="galaxies per HEALPix shard (work unit)")
    parser.add_argument("--stars-per-shard", type=int, help="stars per HEALPix shard (work unit)")
    parser.add_argument("--anomaly-fraction", type=float, help="fraction of anomalous objects (default 0.01)")
    parser.add_argument("--spectroscopic-fraction", type=float,
                        help="mean fraction of imaged galaxies with a DESI-like spectrum (default 0.6)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from astrofm.sim import simulate

    names = ("image_size", "n_galaxies", "n_stars", "galaxies_per_shard", "stars_per_shard", "anomaly_fraction",
             "spectroscopic_fraction")
    overrides = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    universe = simulate(args.root, preset=args.preset, seed=args.seed, workers=args.workers,
                        progress=not args.no_progress, **overrides)
    print(f"simulated universe ({universe.preset}, seed {universe.seed}) at {universe.root}")
    for name, path in universe.datasets.items():
        print(f"  {name:13s} {path}")
    print(f"  {'truth':13s} {universe.truth_dir}")
    print(f"  {'splits':13s} {universe.splits_path}")
    return 0
