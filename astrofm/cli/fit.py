"""``astrofm fit --config configs/<name>.yaml [--trainer.max_steps 100 ...]``: train with LightningCLI."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fit", help="train a model from a YAML config (LightningCLI)", add_help=False, prefix_chars="+",
        description="Train (pretrain or fine-tune) a model. Every option after 'fit' goes to LightningCLI: "
                    "--config configs/galaxy-clip.yaml, --trainer.max_steps N, --ckpt_path last.ckpt, --help; "
                    "--import MODULE first imports a module of yours that registers encoders, transforms, "
                    "objectives or modalities.")
    # no option prefix of its own (prefix_chars="+"), so that every "--x" goes through to LightningCLI
    parser.add_argument("cli_args", nargs=argparse.REMAINDER, help="LightningCLI arguments")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from astrofm.training.cli import run as run_cli

    run_cli(args.cli_args)
    return 0
