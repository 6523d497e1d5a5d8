"""``astrofm crossmatch A B [...] --radius ARCSEC --out PATH``: a multimodal catalog by sky position."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("crossmatch", help="cross-match datasets by sky position")
    parser.add_argument("datasets", nargs="+", metavar="[NAME=]PATH",
                        help="two or more dataset folders; the first is the reference")
    parser.add_argument("--radius", type=float, default=1.0, help="match radius in arcsec (default 1)")
    parser.add_argument("--how", choices=("inner", "outer"), default="inner",
                        help="inner: objects in every dataset; outer: all objects, absent modalities marked")
    parser.add_argument("--out", type=Path, default=None,
                        help="output Parquet (default: <common parent>/crossmatch/<names>-r<radius>-<how>.parquet)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from astrofm.data.crossmatch import load_or_crossmatch
    from astrofm.data.dataset import MMUDataset
    from astrofm.data.sources import parse_named_paths
    from astrofm.errors import ConfigError

    named = parse_named_paths(args.datasets)
    if len(named) < 2:
        raise ConfigError("crossmatch needs at least two datasets")
    datasets = {name: MMUDataset(path, name=name) for name, path in named.items()}
    match = load_or_crossmatch(datasets, radius_arcsec=args.radius, how=args.how, path=args.out)
    print(f"{len(match)} objects ({args.how} join, radius {args.radius:g} arcsec)")
    for name, ds in datasets.items():
        present = int(match.columns[name].sum())
        print(f"  {name:20s} {present:8d} of {len(ds):8d} objects")
    return 0
