"""``astrofm embed --model NAME --data DIR [DIR ...] --out STORE``: embed a dataset into an embedding store."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from astrofm.utils.precision import INFERENCE_PRECISIONS

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("embed", help="embed MMU data with a pretrained model into an embedding store")
    parser.add_argument("--model", required=True, help="registry name, hub id, URL or folder of a saved model")
    parser.add_argument("--data", required=True, nargs="+", metavar="[NAME=]DIR",
                        help="one MMU dataset folder, or several to cross-match (outer join)")
    parser.add_argument("--radius", type=float, default=1.0, help="cross-match radius [arcsec]")
    parser.add_argument("--out", required=True, type=Path, help="embedding store folder (resumed if it exists)")
    parser.add_argument("--modalities", nargs="+", help="modalities to embed (default: every one of the model)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")
    parser.add_argument("--precision", choices=INFERENCE_PRECISIONS, default="auto",
                        help="auto: bf16 autocast where the device computes bf16 natively (CUDA from Ampere on, "
                             "CPUs with AVX512-BF16 or AMX), float32 elsewhere; 32 or bf16 to force one")
    parser.add_argument("--revision", help="hub revision of the model")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from astrofm.data.sources import open_sources
    from astrofm.downstream.store import EmbeddingStore
    from astrofm.hub.pretrained import load_pretrained, model_identity
    from astrofm.hub.resolve import resolve_pretrained
    from astrofm.inference import embed_to_store
    from astrofm.utils.precision import inference_autocast

    folder = resolve_pretrained(args.model, revision=args.revision)
    model = load_pretrained(folder, device=args.device)
    wanted = args.modalities or list(model.modalities)
    source = open_sources(args.data, radius_arcsec=args.radius, modalities=wanted)
    name, version = model_identity(folder)
    with inference_autocast(args.device, args.precision) as autocast:
        out = embed_to_store(model, source, args.out, model_name=name, model_version=version,
                             modalities=wanted, batch_size=args.batch_size, num_workers=args.workers)
    log.info("embedded in %s", "bf16 autocast" if autocast is not None else "float32")
    with EmbeddingStore.open(out) as store:
        counts = {m: store.count(m) if m in store.modalities else 0 for m in wanted}
    print(f"{len(source)} objects read; vectors in {out}: "
          + ", ".join(f"{m} {n}" for m, n in counts.items()))
    for m in (m for m, n in counts.items() if n == 0):
        log.warning("no object of %s has a usable %s: nothing stored for it", " ".join(args.data), m)
    return 0
