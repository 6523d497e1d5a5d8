"""``astrofm models``: the pretrained models astrofm knows, with their provenance and checksums."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("models", help="list the pretrained models in astrofm's registry")
    parser.add_argument("--json", action="store_true", help="print the full entries as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from astrofm.hub.registry import list_pretrained

    entries = list_pretrained()
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
        return 0
    print(f"{'name':24s} {'modalities':34s} {'size':>8s}  {'license':10s} source")
    for e in entries:
        source = next(iter(e.source.items()))
        kind = "external" if e.external else "astrofm"
        print(f"{e.name:24s} {', '.join(e.modalities):34s} {e.size_mb:6.1f}MB  {e.license:10s} "
              f"{source[0]}: {source[1]} ({kind})")
        if e.data:
            print(f"{'':26s}data: {e.data}")
        for metric, value in e.metrics.items():
            print(f"{'':26s}{metric} = {value:.4g}")
        for name, digest in e.files.items():
            print(f"{'':26s}{name} sha256 {digest[:16]}...")
    return 0
