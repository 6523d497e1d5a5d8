"""``astrofm anomaly``: rank a store's objects by anomaly, re-ranked by relevance labels (active learning)."""

from __future__ import annotations

import argparse
from typing import Any

from astrofm.cli._downstream import (
    add_store_arguments,
    open_store,
    output_dir,
    print_table,
    write_json,
    write_table,
)
from astrofm.errors import ConfigError, DataFormatError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("anomaly", help="anomaly ranking with Astronomaly-style active learning")
    add_store_arguments(parser)
    parser.add_argument("--method", default="iforest", choices=("iforest", "lof", "knn"))
    parser.add_argument(
        "--top", type=int, default=30, help="candidates in the gallery and printed (default 30)"
    )
    parser.add_argument(
        "--labels",
        metavar="TABLE",
        help="relevance labels a person gave: a table with object_id and score (0-5)",
    )
    parser.add_argument(
        "--state", metavar="JSON", help="active-learning state to resume (as written to --out)"
    )
    parser.add_argument("--catalog", help="truth catalog for --oracle")
    parser.add_argument(
        "--oracle",
        metavar="COLUMN",
        help="simulate the loop: objects with a true/nonzero COLUMN are relevant (score 5)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="oracle rounds (default 5)")
    parser.add_argument("--per-round", type=int, default=20, help="labels per oracle round (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from astrofm.downstream import plots
    from astrofm.downstream.active import ActiveLearner, simulate_oracle
    from astrofm.downstream.anomaly import anomaly_scores
    from astrofm.downstream.catalog import align, column, read_catalog

    store, modality = open_store(args)
    X = np.asarray(store.vectors(modality))
    ids = store.object_ids(modality)
    scores = anomaly_scores(X, args.method, seed=args.seed)
    if args.state:
        learner = ActiveLearner.load(args.state, X, ids, scores)
    else:
        learner = ActiveLearner(X, ids, scores, seed=args.seed)
    if args.labels:
        labels = read_catalog(args.labels)
        given = _numbers(column(labels, "score", where=args.labels), where=args.labels)
        filled = np.isfinite(given)  # rows left blank are not labelled yet
        learner.label(np.asarray(labels["object_id"])[filled], given[filled], where=args.labels)
    out = output_dir(args)
    report: dict[str, Any] = {
        "store": str(args.store),
        "modality": modality,
        "method": args.method,
        "n_objects": len(ids),
        "n_labels": len(learner.labels),
    }
    if args.oracle:
        if not args.catalog:
            raise ConfigError("--oracle needs --catalog")
        catalog = read_catalog(args.catalog, id_column=args.id_column)
        rows = align(catalog, ids)
        truth = column(catalog, args.oracle, where=args.catalog)
        relevant = np.zeros(len(ids), bool)
        relevant[rows >= 0] = _truthy(truth[rows[rows >= 0]])
        curve = simulate_oracle(learner, relevant, rounds=args.rounds, per_round=args.per_round)
        report["oracle"] = {"column": args.oracle, "n_relevant": int(relevant.sum()), "curve": curve}
        plots.save(plots.plot_precision_curve(curve, top_n=int(relevant.sum())), out / "precision.png")
        print(
            f"oracle '{args.oracle}': precision in the top {int(relevant.sum())}: "
            + ", ".join(f"{p['precision']:.3f} ({p['n_labels']} labels)" for p in curve)
        )
    ranked = learner.rank()
    write_table(ranked, out / "ranked.ecsv")
    learner.save(out / "state.json")
    write_table(_to_label(learner.suggest(args.top)), out / "to_label.csv")
    write_json(out / "anomaly.json", report)
    top = ranked[: args.top]
    print_table(top, ["rank", "object_id", "score", "anomaly", "relevance", "label"], max_rows=args.top)
    samples = plots.load_samples(args.data, list(top["object_id"]))
    titles = [f"#{r} {oid}\n{s:.3f}" for r, oid, s in zip(top["rank"], top["object_id"], top["score"])]
    plots.save(
        plots.gallery(samples, titles, title=f"top {len(top)} candidates ({args.method})"),
        out / "gallery.png",
    )
    return 0


def _truthy(values: Any) -> Any:
    import numpy as np

    values = np.asarray(values)
    if values.dtype.kind in "fiub":
        return np.nan_to_num(values.astype(np.float64)) != 0
    return np.isin(np.char.lower(values.astype(str)), ["true", "yes", "1", "t", "y"])


def _numbers(values: Any, *, where: str) -> Any:
    """Floats of a column that may hold blanks (NaN where blank); errors name the file ``where``."""
    import numpy as np

    values = np.asarray(values)
    if values.dtype.kind in "fiub":
        return values.astype(np.float64)
    try:
        return np.array([float(v) if v.strip() else np.nan for v in values.astype(str).tolist()])
    except ValueError as error:
        raise DataFormatError(
            where, f"relevance scores must be numbers 0-5 ({error})", field="score"
        ) from None


def _to_label(ids: Any) -> Any:
    """The next candidates for a person, with an empty score column to fill in (0-5)."""
    from astropy.table import Table

    return Table({"object_id": ids, "score": [""] * len(ids)})
