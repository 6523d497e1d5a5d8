"""Embed a catalog with a pretrained model and export the embeddings to Parquet.

Give one MMU dataset folder, or several ``name=folder`` datasets of different surveys to cross-match by
position (one row per object, each modality it has)::

    python examples/embed_to_parquet.py --model astrofm-sim-small \\
        --data legacysurvey=data/sim/small/legacysurvey/dr10_south_21 desi=data/sim/small/desi/dr1_main \\
        --out galaxies.parquet

``--model`` is a registry name (``astrofm models``), a model folder, an https URL or a Hugging Face repo id.
The embeddings go first to a resumable embedding store (``--store``, default ``OUT.store`` beside the
Parquet file; an interrupted run continues), then to Parquet: an ``object_id`` column and one fixed-size
float32 list column per modality (null where an object lacks it), with the model's name and version in
the file's metadata. Read it back with ``pyarrow.parquet.read_table`` or ``datasets.Dataset.from_parquet``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="registry name, model folder, URL or hub id")
    parser.add_argument("--data", required=True, nargs="+", help="an MMU dataset folder, or name=folder ...")
    parser.add_argument("--out", required=True, type=Path, help="the Parquet file to write")
    parser.add_argument("--store", type=Path, default=None, help="embedding store folder (default OUT.store)")
    parser.add_argument("--modalities", nargs="+", default=None, help="modalities to embed (default: all)")
    parser.add_argument("--radius", type=float, default=1.0, help="cross-match radius [arcsec]")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    args = parser.parse_args(argv)

    import torch

    from astrofm import AstroFM
    from astrofm.data.sources import open_sources
    from astrofm.downstream import EmbeddingStore
    from astrofm.inference import embed_to_store

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = AstroFM.from_pretrained(args.model, device=device)
    catalog = open_sources(args.data, radius_arcsec=args.radius)
    store_path = args.store or args.out.with_suffix(".store")
    embed_to_store(model, catalog, store_path, model_name=str(args.model), modalities=args.modalities,
                   batch_size=args.batch_size)
    store = EmbeddingStore.open(store_path)
    store.to_parquet(args.out)
    counts = ", ".join(f"{name} {store.count(name)}" for name in store.modalities)
    print(f"{args.out}: {len(catalog)} objects ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
