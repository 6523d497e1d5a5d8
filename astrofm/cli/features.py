"""``astrofm features``: train a sparse autoencoder on a store; feature report, correlations, galleries."""

from __future__ import annotations

import argparse
from typing import Any

from astrofm.cli._downstream import add_store_arguments, open_store, output_dir, print_table, write_table
from astrofm.errors import ConfigError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("features", help="sparse-autoencoder features of embeddings")
    add_store_arguments(parser)
    parser.add_argument("--n-features", type=int, help="dictionary size (default 4 x D)")
    parser.add_argument(
        "--k", type=int, default=16, help="active features per object (top-k sparsity, default 16)"
    )
    parser.add_argument("--l1", type=float, help="use an L1 penalty of this weight instead of top-k")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--catalog", help="table with object_id and columns to correlate with the features")
    parser.add_argument(
        "--columns", nargs="+", help="catalog columns to correlate (default: every numeric one)"
    )
    parser.add_argument("--top-features", type=int, default=6, help="features drawn as galleries (default 6)")
    parser.add_argument(
        "--per-feature", type=int, default=12, help="objects per feature gallery (default 12)"
    )
    parser.add_argument("--steer-id", help="object whose embedding is steered and searched again")
    parser.add_argument("--steer-feature", type=int, help="feature added to (or removed from) --steer-id")
    parser.add_argument("--steer-delta", type=float, help="activation added (default: remove the feature)")
    parser.add_argument("--k-neighbours", type=int, default=10, help="neighbours of the steered search")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from astrofm.downstream import plots
    from astrofm.downstream.features import SparseAutoencoder, top_activating

    store, modality = open_store(args)
    X = np.asarray(store.vectors(modality))
    sparsity = {"sparsity": "l1", "l1": args.l1} if args.l1 is not None else {"sparsity": "topk", "k": args.k}
    sae = SparseAutoencoder(args.n_features, epochs=args.epochs, seed=args.seed, **sparsity)
    _check_steering(args, store, modality, sae.dictionary_size(X.shape[1]))
    sae.fit(X)
    out = output_dir(args)
    sae.save(out / "sae")
    activations = sae.transform(X)
    report = sae.feature_report(X)
    write_table(report, out / "features.ecsv")
    report.sort("explained_variance", reverse=True)
    print(
        f"sparse autoencoder on {len(X)} {modality} embeddings: {len(sae.dictionary)} features, "
        f"reconstruction R² = {sae.score(X):.4f}"
    )
    print_table(
        report, ["feature", "frequency", "mean_activation", "explained_variance"], max_rows=args.top_features
    )
    ids = store.object_ids(modality)
    for feature in report["feature"][: args.top_features]:
        rows = top_activating(activations, int(feature), args.per_feature)
        samples = plots.load_samples(args.data, ids[rows].tolist())
        titles = [f"{oid}\na={activations[r, feature]:.3g}" for oid, r in zip(ids[rows], rows)]
        plots.save(
            plots.gallery(samples, titles, title=f"feature {feature}"), out / f"feature_{feature:04d}.png"
        )
    if args.catalog:
        _correlations(args, activations, ids, out)
    if args.steer_id is not None:
        _steer(args, store, modality, sae, out)
    return 0


def _correlations(args: argparse.Namespace, activations: Any, ids: Any, out: Any) -> None:
    import numpy as np

    from astrofm.downstream.catalog import align, column, read_catalog
    from astrofm.downstream.features import correlate_features

    catalog = read_catalog(args.catalog, id_column=args.id_column)
    rows = align(catalog, ids)
    names = args.columns or [
        c
        for c in catalog.colnames
        if c != "object_id" and catalog[c].dtype.kind in "fiu" and catalog[c].ndim == 1
    ]
    columns = {}
    for name in names:
        values = column(catalog, name, where=args.catalog).astype(np.float64)
        columns[name] = np.where(rows >= 0, values[np.maximum(rows, 0)], np.nan)
    table = correlate_features(activations, columns, min_frequency=0.001)
    write_table(table, out / "correlations.ecsv")
    print("strongest feature / catalog correlations (Spearman):")
    print_table(table, ["feature", "column", "spearman_rho", "n"], max_rows=10)


def _check_steering(args: argparse.Namespace, store: Any, modality: str, n_features: int) -> None:
    """Check the steering options before the autoencoder is trained (and its outputs written)."""
    if args.steer_id is None:
        if args.steer_feature is not None or args.steer_delta is not None:
            raise ConfigError("--steer-feature and --steer-delta need --steer-id")
        return
    if args.steer_feature is None:
        raise ConfigError("--steer-id needs --steer-feature")
    if not 0 <= args.steer_feature < n_features:
        raise ConfigError(f"--steer-feature must lie in [0, {n_features}), not {args.steer_feature}")
    if not 1 <= args.k_neighbours < store.count(modality):
        raise ConfigError(
            f"--k-neighbours must lie in [1, {store.count(modality) - 1}] (the store less --steer-id), "
            f"not {args.k_neighbours}"
        )
    store.index_of(modality, [args.steer_id])  # an id not stored raises DataFormatError


def _steer(args: argparse.Namespace, store: Any, modality: str, sae: Any, out: Any) -> None:
    import numpy as np

    from astrofm.downstream.search import search_store

    query = store.get(modality, [args.steer_id])
    steered = sae.steer(
        query,
        args.steer_feature,
        delta=args.steer_delta,
        remove=args.steer_delta is None,
        renormalize=store.normalization(modality) == "l2",
    )
    table = search_store(store, modality, vectors=steered, k=args.k_neighbours + 1).to_table()
    table = table[table["object_id"] != args.steer_id][: args.k_neighbours]  # the object itself is no news
    table.replace_column("query_id", np.full(len(table), args.steer_id))
    table["rank"] = range(1, len(table) + 1)
    write_table(table, out / "steered_search.ecsv")
    change = f"+{args.steer_delta:g}" if args.steer_delta is not None else "removed"
    print(f"neighbours of {args.steer_id} with feature {args.steer_feature} {change}:")
    print_table(table, ["rank", "object_id", "distance"], max_rows=args.k_neighbours)
