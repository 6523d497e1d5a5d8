"""``astrofm map``: a UMAP map of a store, coloured by catalog columns, with thumbnails."""

from __future__ import annotations

import argparse
from typing import Any

from astrofm.cli._downstream import add_store_arguments, open_store, output_dir, write_table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("map", help="UMAP map of embeddings with catalog colours and thumbnails")
    add_store_arguments(parser)
    parser.add_argument("--catalog", help="table with object_id and the columns to colour by")
    parser.add_argument("--color", nargs="+", default=[], metavar="COLUMN", help="catalog columns to colour by")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-neighbors", type=int, default=15)
    parser.add_argument("--min-dist", type=float, default=0.1)
    parser.add_argument("--thumbnails", type=int, default=36, help="objects drawn on the map with --data (default 36)")
    parser.add_argument("--cache", help="folder of cached maps (default: --out)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from astropy.table import Table

    from astrofm.downstream import plots
    from astrofm.downstream.catalog import align, column, read_catalog
    from astrofm.downstream.maps import umap_projection
    from astrofm.errors import ConfigError

    store, modality = open_store(args)
    if args.color and not args.catalog:
        raise ConfigError("--color needs --catalog")
    out = output_dir(args)
    ids = store.object_ids(modality)
    xy = umap_projection(
        store.vectors(modality),
        seed=args.seed,
        n_neighbors=args.n_neighbors,
        min_dist=args.min_dist,
        cache_dir=args.cache or out,
    )
    write_table(Table({"object_id": ids, "x": xy[:, 0], "y": xy[:, 1]}), out / "map.ecsv")
    title = f"{store.model} {modality} embeddings"
    plots.save(plots.plot_map(xy, title=title), out / "map.png")
    if args.catalog:
        catalog = read_catalog(args.catalog, id_column=args.id_column)
        rows = align(catalog, ids)
        for name in args.color:
            values = column(catalog, name, where=args.catalog)
            numeric = values.dtype.kind in "fiub"
            shown = values[np.maximum(rows, 0)].astype(np.float64 if numeric else str)
            shown[rows < 0] = np.nan if numeric else "unknown"
            plots.save(plots.plot_map(xy, shown, label=name, title=title), out / f"map_{name}.png")
    if args.data:
        rows = plots.spread_rows(xy, args.thumbnails, among=np.isin(ids, plots.data_ids(args.data)))
        samples = plots.load_samples(args.data, ids[rows].tolist())
        plots.save(plots.plot_map_thumbnails(xy, samples, rows), out / "map_thumbnails.png")
    print(f"UMAP map of {len(ids)} {modality} embeddings written to {out}")
    return 0
