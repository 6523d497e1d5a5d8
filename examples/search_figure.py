"""Make a similarity-search figure: query objects and their nearest neighbours in an embedding store.

Each row of the figure is a query (drawn in the query modality) followed by its ``k`` nearest neighbours
in the target modality, with their cosine distances. Cross-modal search (an image finding spectra) works
because every modality lives in the same space::

    python examples/search_figure.py --store galaxies.store \\
        --data legacysurvey=data/sim/small/legacysurvey/dr10_south_21 desi=data/sim/small/desi/dr1_main \\
        --modality image --target-modality spectrum --random 4 --k 5 --out search.png

The store is one written by ``astrofm embed`` or ``examples/embed_to_parquet.py``; ``--data`` are the
dataset folders it was embedded from (the same ``name=folder`` list, cross-matched the same way), read to
draw the thumbnails. Queries are ``--query ID ...`` or ``--random N`` objects of the query modality.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def only(sample: dict[str, Any], modality: str) -> dict[str, Any]:
    """The object with just one modality (the one its cell of the figure draws)."""
    return {"object_id": sample["object_id"], **({modality: sample[modality]} if modality in sample else {})}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, type=Path, help="an embedding store folder")
    parser.add_argument("--data", required=True, nargs="+", help="the MMU dataset folder(s) of the store")
    parser.add_argument("--modality", default=None, help="query modality (default: the store's first)")
    parser.add_argument("--target-modality", default=None, help="searched modality (default: --modality)")
    queries = parser.add_mutually_exclusive_group()
    queries.add_argument("--query", nargs="+", default=None, help="object ids to query")
    queries.add_argument("--random", type=int, default=4, help="query N random objects (default 4)")
    parser.add_argument("--k", type=int, default=5, help="neighbours per query")
    parser.add_argument("--radius", type=float, default=1.0, help="cross-match radius [arcsec]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path, help="the PNG to write")
    args = parser.parse_args(argv)

    import numpy as np

    from astrofm.data.sources import open_sources
    from astrofm.downstream import EmbeddingStore, search_store
    from astrofm.downstream.plots import neighbour_grid, save

    store = EmbeddingStore.open(args.store)
    modality = args.modality or store.modalities[0]
    target = args.target_modality or modality
    if args.query:
        query_ids = np.asarray(args.query, dtype=str)
    else:
        candidates = store.object_ids(modality)
        picks = np.random.default_rng(args.seed).choice(len(candidates), min(args.random, len(candidates)), False)
        query_ids = candidates[np.sort(picks)]
    found = search_store(store, modality, object_ids=query_ids, target_modality=target, k=args.k)
    catalog = open_sources(args.data, radius_arcsec=args.radius)
    query_samples = [only(catalog.get(q), modality) for q in found.query_ids]
    result_samples = [[only(catalog.get(i), target) for i in row if i] for row in found.ids]
    figure = neighbour_grid(query_samples, result_samples, found.distances)
    save(figure, args.out)
    print(found.to_table())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
