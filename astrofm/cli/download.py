"""``astrofm download SOURCE``: fetch a pretrained model into the cache (for later offline use)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("download", help="download and verify a pretrained model into the cache")
    parser.add_argument("source", help="registry name, hub id (owner/name), https URL, or folder")
    parser.add_argument("--revision", help="hub revision (branch, tag or commit)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from astrofm.hub.resolve import resolve_pretrained

    folder = resolve_pretrained(args.source, revision=args.revision)
    print(f"{args.source}: verified, in {folder}")
    return 0
