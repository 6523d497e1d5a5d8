"""``astrofm export CHECKPOINT --out FOLDER``: a Lightning checkpoint to a pretrained-model folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export", help="turn a training checkpoint into a pretrained folder (safetensors + config.json + card)")
    parser.add_argument("checkpoint", type=Path, help="Lightning .ckpt written by astrofm fit (read weights-only)")
    parser.add_argument("--out", required=True, type=Path, help="folder to write (replaced atomically)")
    parser.add_argument("--name", help="model name for the card (default: the folder name)")
    parser.add_argument("--description", default="", help="one paragraph for the model card")
    parser.add_argument("--training-data", default="", help="what the model was trained on")
    parser.add_argument("--objective", default="", help="the pretraining objective")
    parser.add_argument("--license", default="MIT")
    parser.add_argument("--metrics", type=Path, help="JSON file of {metric: value} for the card")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from astrofm.hub.pretrained import ModelCard
    from astrofm.training.export import export_checkpoint

    metrics = _read_metrics(args.metrics) if args.metrics is not None else {}
    card = ModelCard(name=args.name or args.out.name, description=args.description,
                     training_data=args.training_data, objective=args.objective, metrics=metrics,
                     license=args.license, command=f"astrofm export {args.checkpoint} --out {args.out}")
    folder = export_checkpoint(args.checkpoint, args.out, card=card)
    print(f"exported {args.checkpoint} to {folder}")
    return 0


def _read_metrics(path: Path) -> dict[str, float]:
    """``{metric: value}`` from a JSON file; a bad file or value raises DataFormatError naming it."""
    from astrofm.errors import DataFormatError

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataFormatError(path, f"cannot read the metrics ({error})", expected="a JSON object") from None
    if not isinstance(data, dict):
        raise DataFormatError(
            path, "metrics are not a JSON object", expected="{metric: number}", found=type(data).__name__
        )
    metrics = {}
    for name, value in data.items():
        try:
            metrics[name] = float(value)
        except (TypeError, ValueError):
            raise DataFormatError(path, "metric is not a number", field=name, found=repr(value)) from None
    return metrics
