"""Train a model on a folder of MMU data from a YAML config, with every output in one folder.

A training config (``configs/*.yaml``) is a LightningCLI file with ``trainer``, ``model`` and ``data``
sections. This script points its ``data.root`` at your MMU data (a folder holding
``<survey>/<subset>/healpix=N/*.hdf5`` datasets), moves every log, checkpoint and the exported model under
``--out``, writes the resolved config there, and trains (here on a simulated universe made first)::

    astrofm simulate --root data/sim/tiny --preset tiny
    python examples/train_from_yaml.py --config configs/galaxy-clip-tiny.yaml --data-root data/sim/tiny \\
        --out runs/my-run --max-steps 30

The trained model is exported (safetensors + JSON) to ``OUT/model`` and loads with
``AstroFM.from_pretrained("OUT/model")``. Resume an interrupted run with ``--resume``. Any further
``--section.option value`` arguments go to LightningCLI (``--trainer.devices 2``, ...). The same training
runs without this script as ``astrofm fit --config CONFIG --data.root DIR``; the script only gathers the
outputs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


def resolve_config(config: dict[str, Any], data_root: Path | None, out: Path, max_steps: int | None
                   ) -> dict[str, Any]:
    """The config with its data root, outputs and step count replaced, and a model-export callback added."""
    config = dict(config)
    trainer = dict(config.get("trainer", {}))
    trainer["default_root_dir"] = str(out)
    if max_steps is not None:
        trainer["max_steps"] = max_steps
    loggers = trainer.get("logger")
    if isinstance(loggers, dict):
        loggers = [loggers]
    if isinstance(loggers, list):
        trainer["logger"] = [{**lg, "init_args": {**lg.get("init_args", {}), "save_dir": str(out / "logs")}}
                             for lg in loggers]
    callbacks = []
    for callback in trainer.get("callbacks") or []:
        if callback.get("class_path", "").endswith("ModelCheckpoint"):
            callback = {**callback, "init_args": {**callback.get("init_args", {}), "dirpath": str(out / "checkpoints")}}
        if not callback.get("class_path", "").endswith("ExportPretrained"):
            callbacks.append(callback)
    callbacks.append({"class_path": "astrofm.training.ExportPretrained",
                      "init_args": {"folder": str(out / "model"), "card": {"name": out.name}}})
    trainer["callbacks"] = callbacks
    config["trainer"] = trainer
    data = dict(config.get("data", {}))
    if data_root is not None:
        data["root"] = str(data_root)
        data["simulate"] = None  # your data, not the simulator's
    config["data"] = data
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help="a training YAML (e.g. configs/galaxy-clip.yaml)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder of MMU datasets; the config's dataset paths are relative to it "
                             "(default: the config's data.root)")
    parser.add_argument("--out", required=True, type=Path, help="folder for logs, checkpoints and the model")
    parser.add_argument("--max-steps", type=int, default=None, help="override trainer.max_steps")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt")
    args, extra = parser.parse_known_args(argv)

    from astrofm.training.cli import run

    config = resolve_config(yaml.safe_load(args.config.read_text()), args.data_root, args.out, args.max_steps)
    args.out.mkdir(parents=True, exist_ok=True)
    resolved = args.out / "config.yaml"
    resolved.write_text(yaml.safe_dump(config, sort_keys=False))
    cli_args = ["--config", str(resolved), *extra]
    last = args.out / "checkpoints" / "last.ckpt"
    if args.resume and last.exists():
        cli_args += ["--ckpt_path", str(last)]
    run(cli_args)
    print(f"model: {args.out / 'model'} (AstroFM.from_pretrained({str(args.out / 'model')!r}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
