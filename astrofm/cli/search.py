"""``astrofm search``: nearest neighbours of objects (or new vectors), in-modal or cross-modal."""

from __future__ import annotations

import argparse
from typing import Any

from astrofm.cli._downstream import add_store_arguments, open_store, output_dir, print_table, write_table
from astrofm.errors import ConfigError, DataFormatError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("search", help="similarity search in an embedding store (exact or ANN)")
    add_store_arguments(parser)
    queries = parser.add_mutually_exclusive_group(required=True)
    queries.add_argument(
        "--id", nargs="+", dest="ids", metavar="OBJECT_ID", help="query objects (in --modality)"
    )
    queries.add_argument("--vector", type=str, metavar="NPY", help=".npy file of query vectors (q, D)")
    parser.add_argument(
        "--target-modality", help="modality searched (default: --modality); e.g. image -> spectrum"
    )
    parser.add_argument("--k", type=int, default=10, help="neighbours per query (default 10)")
    parser.add_argument("--metric", default="cosine", choices=("cosine", "l2"))
    parser.add_argument(
        "--ann",
        choices=("auto", "hnsw", "ivfpq", "flat"),
        help="use a faiss index of this kind (default: exact search)",
    )
    parser.add_argument(
        "--index",
        metavar="DIR",
        help="saved ANN index: loaded if present (checked against the store), else built there",
    )
    parser.add_argument(
        "--include-self", action="store_true", help="keep the query object among its neighbours"
    )
    parser.add_argument(
        "--show",
        choices=("image", "spectrum", "lightcurve"),
        help="modality drawn in the thumbnail grid (default: the first present)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from astrofm.downstream import plots
    from astrofm.downstream.search import search_store

    store, modality = open_store(args)
    target = store.default_modality(args.target_modality or modality)
    drop_self = bool(args.ids) and not args.include_self and target == modality
    available = store.count(target) - int(drop_self)
    if not 1 <= args.k <= available:
        raise ConfigError(
            f"--k must lie in [1, {available}] ({target} holds {store.count(target)} vectors"
            f"{', less the query itself' if drop_self else ''}), not {args.k}"
        )
    vectors = _query_vectors(args.vector) if args.vector else None
    index = _index(args, store, target)
    result = search_store(
        store,
        modality,
        object_ids=args.ids,
        vectors=vectors,
        target_modality=target,
        k=args.k,
        metric=args.metric,
        index=index,
        exclude_self=not args.include_self,
    )
    out = output_dir(args)
    table = result.to_table()
    write_table(table, out / "neighbours.ecsv")
    print(
        f"{len(result.query_ids)} queries in {modality} -> {target} ({result.metric}, "
        f"{'exact' if index is None else index.kind})"
    )
    print_table(table, ["query_id", "rank", "object_id", "distance"], max_rows=20 * args.k)
    queries = plots.load_samples(args.data, [q or "(vector)" for q in result.query_ids])
    neighbours = [plots.load_samples(args.data, [i for i in row if i]) for row in result.ids]
    shown = np.where(np.isfinite(result.distances), result.distances, np.nan)
    plots.save(
        plots.neighbour_grid(queries, neighbours, shown, modality=args.show), Path(out) / "neighbours.png"
    )
    return 0


def _query_vectors(path: str) -> Any:
    """The (q, D) query vectors of a .npy file (one vector (D,) is one query)."""
    import numpy as np

    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DataFormatError(path, f"cannot read query vectors ({error})", expected="a .npy file") from None
    if not isinstance(vectors, np.ndarray) or vectors.ndim not in (1, 2):
        raise DataFormatError(
            path,
            "not an array of query vectors",
            expected="a .npy array (q, D) or (D,)",
            found=getattr(vectors, "shape", type(vectors).__name__),
        )
    return vectors[None, :] if vectors.ndim == 1 else vectors


def _index(args: argparse.Namespace, store: Any, target: str) -> Any:
    from pathlib import Path

    from astrofm.downstream.ann import META_FILE, AnnIndex

    if args.index and (Path(args.index) / META_FILE).exists():
        index = AnnIndex.load(args.index, store=store, modality=target)
        if index.metric != args.metric:
            raise ConfigError(f"index {args.index} was built for metric {index.metric}, not {args.metric}")
        return index
    if args.ann is None:
        if args.index:
            raise ConfigError(f"no saved index in {args.index}: give --ann KIND to build one")
        return None
    index = AnnIndex.build(
        store.vectors(target), kind=args.ann, metric=args.metric, store=store, modality=target
    )
    if args.index:
        index.save(args.index)
    return index
