"""``astrofm probe``: fit a probe from a store's embeddings to a catalog column; metrics and plots."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from astrofm.cli._downstream import add_store_arguments, open_store, output_dir, print_table, write_json
from astrofm.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

_TASKS = ("auto", "regression", "redshift", "classification")
_REDSHIFT_NAMES = {"z", "redshift", "zspec", "z_spec", "z_true", "zphot", "z_phot", "photoz", "true_z"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "probe", help="kNN / linear / MLP probe of embeddings against a catalog column"
    )
    add_store_arguments(parser, data=False)
    parser.add_argument("--catalog", required=True, help="table with object_id and the target column")
    parser.add_argument("--target", required=True, help="catalog column to predict")
    parser.add_argument(
        "--probe", default="knn", choices=("knn", "linear", "mlp"), help="probe (default knn)"
    )
    parser.add_argument(
        "--task",
        default="auto",
        choices=_TASKS,
        help="auto: classification for text or few integer values, redshift for z-like names",
    )
    parser.add_argument("--k", type=int, default=64, help="neighbours of the kNN probe (default 64)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="held-out fraction (default 0.2)")
    parser.add_argument(
        "--split-column", help="catalog column with 'train' / 'test' values (instead of a random split)"
    )
    parser.add_argument(
        "--cv", type=int, default=0, metavar="FOLDS", help="also cross-validate with this many folds"
    )
    parser.add_argument(
        "--label-fractions",
        action="store_true",
        help="also measure test metrics with 1, 10, 25, 50, 100%% of the training labels",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per label fraction (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from astrofm.downstream import plots
    from astrofm.downstream.catalog import align, column, read_catalog
    from astrofm.downstream.probes import cross_validate, label_fraction_curve, make_probe

    store, modality = open_store(args)
    catalog = read_catalog(args.catalog, id_column=args.id_column)
    values = column(catalog, args.target, where=args.catalog)
    stored = catalog[args.target].dtype  # column() gives floats (NaN = blank) for an integer column with blanks
    ids = store.object_ids(modality)
    rows = align(catalog, ids)
    task = _task(args.task, args.target, values, stored)
    numeric = task != "classification"
    if numeric and values.dtype.kind not in "fiub":
        raise DataFormatError(
            args.catalog,
            "target is not numeric",
            field=args.target,
            expected="numbers",
            found=values.dtype,
        )
    known = (rows >= 0) & ~_blank(values[np.maximum(rows, 0)])
    if known.sum() < 4:
        raise DataFormatError(
            args.catalog,
            "too few store objects with a target in the catalog",
            field=args.target,
            expected=">= 4",
            found=int(known.sum()),
        )
    if (~known).any():
        log.warning(
            "%d of %d embeddings have no %s in the catalog and are skipped",
            (~known).sum(),
            len(ids),
            args.target,
        )
    X = np.asarray(store.vectors(modality))[known]
    y = values[rows[known]]
    # classes keep the catalog's type: an integer column gives "0", "1", not "0.0", "1.0"
    y = y.astype(np.float64) if numeric else y.astype(stored if stored.kind in "iub" else y.dtype).astype(str)
    train, test = _split(args, catalog, rows[known], y, numeric)
    redshift = task == "redshift"
    params = {"k": args.k} if args.probe == "knn" else {"seed": args.seed} if args.probe == "mlp" else {}
    probe = make_probe(args.probe, "regression" if numeric else "classification", **params)
    probe.fit(X[train], y[train])
    y_pred = probe.predict(X[test])
    metrics = probe.evaluate(y[test], y_pred, redshift=redshift)
    out = output_dir(args)
    report: dict[str, Any] = {
        "store": str(args.store),
        "modality": modality,
        "model": store.model,
        "catalog": str(args.catalog),
        "target": args.target,
        "task": task,
        "probe": args.probe,
        "params": probe.get_params(),
        "n_train": len(train),
        "n_test": len(test),
        "test": metrics,
    }
    if numeric:
        figure = plots.plot_true_vs_predicted(y[test], y_pred, metrics, label=args.target, redshift=redshift)
        plots.save(figure, out / "true_vs_predicted.png")
    else:
        plots.save(
            plots.plot_confusion(metrics["confusion_matrix"], metrics["labels"]), out / "confusion.png"
        )
    if args.cv:
        report["cross_validation"] = cross_validate(
            probe, X, y, n_splits=args.cv, seed=args.seed, redshift=redshift
        )
    if args.label_fractions:
        curve = label_fraction_curve(
            probe, X[train], y[train], X[test], y[test], seeds=range(args.seeds), redshift=redshift
        )
        report["label_fractions"] = curve
        key = "r2" if numeric else "accuracy"
        plots.save(plots.plot_label_fraction_curves({args.probe: curve}, key), out / "label_fractions.png")
    write_json(out / "metrics.json", report)
    _print(report)
    return 0


def _task(choice: str, name: str, values: Any, stored: Any) -> str:
    """The task for ``--task auto``: ``stored`` is the catalog column's dtype (``values`` may be floats)."""
    import numpy as np

    if choice != "auto":
        return choice
    if values.dtype.kind not in "fiub":
        return "classification"
    finite = values[np.isfinite(values.astype(np.float64))]
    if stored.kind in "iub" and len(np.unique(finite)) <= 20:
        return "classification"
    return "redshift" if name.lower() in _REDSHIFT_NAMES else "regression"


def _blank(values: Any) -> Any:
    """Where a catalog column (as from ``catalog.column``) was left blank: NaN or ""."""
    import numpy as np

    if values.dtype.kind == "f":
        return ~np.isfinite(values)
    return values == "" if values.dtype.kind == "U" else np.zeros(len(values), bool)


def _split(args: argparse.Namespace, catalog: Any, rows: Any, y: Any, numeric: bool) -> tuple[Any, Any]:
    import numpy as np
    from sklearn.model_selection import train_test_split

    from astrofm.downstream.catalog import column

    if args.split_column:
        split = np.char.lower(column(catalog, args.split_column, where=args.catalog)[rows].astype(str))
        train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
        if not len(train) or not len(test):
            raise DataFormatError(
                args.catalog,
                "split column needs 'train' and 'test' rows",
                field=args.split_column,
                expected="train and test",
                found=sorted(set(split.tolist()))[:10],
            )
        return train, test
    if not 0 < args.test_fraction < 1:
        raise ConfigError(f"--test-fraction must lie in (0, 1), not {args.test_fraction}")
    index = np.arange(len(y))
    _, counts = np.unique(y, return_counts=True)
    stratify = y if not numeric and counts.min() >= 2 else None
    train, test = train_test_split(
        index, test_size=args.test_fraction, random_state=args.seed, stratify=stratify
    )
    return np.sort(train), np.sort(test)


def _print(report: dict[str, Any]) -> None:
    from astropy.table import Table

    print(
        f"{report['probe']} probe of {report['modality']} embeddings -> {report['target']} "
        f"({report['task']}), {report['n_train']} train / {report['n_test']} test"
    )
    scalars = {k: v for k, v in report["test"].items() if isinstance(v, float)}
    rows: dict[str, list[Any]] = {"metric": list(scalars), "test": list(scalars.values())}
    if "cross_validation" in report:
        cv = report["cross_validation"]
        rows["cv_mean"] = [cv["mean"].get(k, float("nan")) for k in scalars]
        rows["cv_std"] = [cv["std"].get(k, float("nan")) for k in scalars]
    print_table(Table(rows), list(rows))
    if "label_fractions" in report:
        key = "r2" if "r2" in scalars else "accuracy"
        curve = report["label_fractions"]
        print_table(
            Table(
                {
                    "labels_%": [100 * p["fraction"] for p in curve],
                    "n": [p["n_labels"] for p in curve],
                    f"{key}_mean": [p["mean"][key] for p in curve],
                    f"{key}_std": [p["std"][key] for p in curve],
                }
            ),
            ["labels_%", "n", f"{key}_mean", f"{key}_std"],
        )
