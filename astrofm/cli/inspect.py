"""``astrofm inspect PATH``: validate a dataset or shard and summarize it."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("inspect", help="validate an MMU dataset/shard (or Parquet copy) and summarize it")
    parser.add_argument("path", help="a shard, a dataset folder, or a Parquet file/folder in MMU's hub schema")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from astrofm.data.inspect import inspect_dataset

    summary = inspect_dataset(args.path, progress=not args.json)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['path']}: valid {summary['format']}, {summary['n_objects']} objects")
    modalities = summary["modalities"]
    if isinstance(modalities, dict):
        for name, dims in modalities.items():
            print(f"  modality {name:10s} " + " ".join(f"{k}={v}" for k, v in dims.items()))
    else:
        print(f"  modalities: {', '.join(modalities) or 'none'}")
    for name, info in summary["fields"].items():
        if isinstance(info, dict):
            shape = "(" + ", ".join(map(str, info["shape"])) + ")"
            print(f"  {name:24s} {shape:22s} {info['dtype']:6s} {info['unit']}")
        else:
            print(f"  {name:24s} {info}")
    if "healpix_pixels" in summary:
        pixels = summary["healpix_pixels"]
        print(f"  healpix (nested, nside 16): {len(pixels)} pixels: {pixels[:10]}{' ...' if len(pixels) > 10 else ''}")
    return 0
