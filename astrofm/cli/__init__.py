"""The ``astrofm`` command. Each subcommand lives in its own module of this package.

A command module defines ``register(subparsers)``, which adds its parser and
sets ``func`` to a handler ``(args) -> int``. Handlers import heavy libraries
(torch, lightning) themselves, so ``astrofm --version`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from astrofm._version import __version__
from astrofm.errors import AstrofmError

#: Subcommand modules, in the order ``astrofm --help`` lists them.
COMMAND_MODULES = (
    "info",
    "simulate",
    "inspect",
    "crossmatch",
    "fit",
    "export",
    "embed",
    "models",
    "download",
    "probe",
    "search",
    "anomaly",
    "features",
    "map",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="astrofm",
        description="Multimodal astronomical foundation models on Multimodal Universe data.",
    )
    parser.add_argument("--version", action="version", version=f"astrofm {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log progress (-v) or debug (-vv) messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"astrofm.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except AstrofmError as error:
        print(f"astrofm {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
