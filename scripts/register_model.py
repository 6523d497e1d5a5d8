"""Maintainers: add or refresh a model folder's entry in astrofm's registry (astrofm/hub/registry.json).

    python scripts/register_model.py astrofm/hub/weights/astrofm-sim-small --package

The entry takes the name, description, training data, objective, metrics, license and command from the
model card in the folder's config.json, the SHA-256 of each file from its manifest, and size and parameter
count from the weights. ``--package`` ships the folder inside astrofm (source ``{"package": NAME}``);
``--url``/``--hub`` point at where the same files are published.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file

from astrofm.hub.pretrained import WEIGHTS, card_of, read_config
from astrofm.hub.resolve import MANIFEST, verify_files

REGISTRY = Path(__file__).resolve().parents[1] / "astrofm" / "hub" / "registry.json"


def entry_for(folder: Path, source: dict[str, str]) -> dict:
    files = json.loads((folder / MANIFEST).read_text())["files"]
    verify_files(folder, files)
    card = card_of(folder)
    parameters = sum(tensor.numel() for tensor in load_file(str(folder / WEIGHTS)).values())
    size = sum((folder / name).stat().st_size for name in files) / 2**20
    return {"name": card.name, "description": card.description,
            "modalities": sorted(read_config(folder)["model"]["modalities"]), "source": source,
            "files": files, "format": "astrofm", "size_mb": round(size, 2), "parameters": parameters,
            "data": card.training_data, "objective": card.objective, "metrics": card.metrics,
            "license": card.license, "external": False, "command": card.command}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--package", action="store_true", help="the folder ships inside astrofm/hub/weights/")
    where.add_argument("--url", help="https URL of the published folder")
    where.add_argument("--hub", help="Hugging Face repo id of the published folder")
    args = parser.parse_args()
    source = ({"package": args.folder.name} if args.package else {"url": args.url} if args.url
              else {"hub": args.hub})
    entry = entry_for(args.folder, source)
    registry = json.loads(REGISTRY.read_text())
    models = [m for m in registry["models"] if m["name"] != entry["name"]]
    registry["models"] = [entry, *models]
    tmp = REGISTRY.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(registry, indent=2) + "\n")
    tmp.replace(REGISTRY)
    print(f"registered {entry['name']}: {entry['size_mb']} MB, {entry['parameters']:,} parameters")


if __name__ == "__main__":
    main()
