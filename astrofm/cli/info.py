"""``astrofm info``: versions, devices, cache and data roots."""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import platform
from typing import Any

from astrofm._version import __version__
from astrofm.paths import cache_root, data_root

_PACKAGES = ("torch", "lightning", "timm", "numpy", "h5py", "astropy", "datasets", "huggingface-hub",
             "safetensors", "scikit-learn", "faiss-cpu")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("info", help="versions, devices, cache and data roots")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def collect() -> dict[str, Any]:
    """Everything ``astrofm info`` reports, as a dict."""
    import torch

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    devices = ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return {
        "astrofm": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "devices": devices,
        "cpu_threads": torch.get_num_threads(),
        "cache_root": str(cache_root()),
        "data_root": str(data_root()),
    }


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"astrofm {info['astrofm']} (Python {info['python']}, {info['platform']})")
    for name, version in info["packages"].items():
        print(f"  {name:16s} {version or 'not installed'}")
    print(f"devices:    {', '.join(info['devices'])} ({info['cpu_threads']} CPU threads)")
    print(f"cache root: {info['cache_root']}  (set $ASTROFM_HOME to change)")
    print(f"data root:  {info['data_root']}  (set $ASTROFM_DATA to change)")
    return 0
