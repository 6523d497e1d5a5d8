"""Options and outputs shared by the downstream commands (probe, search, anomaly, features, map)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from astrofm.utils.atomic import atomic_path, atomic_write_text


def add_store_arguments(parser: argparse.ArgumentParser, *, data: bool = True) -> None:
    """--store, --modality, --out (and --data for thumbnails)."""
    parser.add_argument("--store", required=True, type=Path, help="embedding store folder")
    parser.add_argument("--modality", help="modality of the store (default: its only one)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--id-column", default="object_id",
                        help="catalog column holding the store's object ids (e.g. desi_object_id in the sim truth)")
    if data:
        parser.add_argument(
            "--data",
            nargs="+",
            type=Path,
            metavar="DIR",
            help="MMU dataset folder(s) with the objects, for thumbnails",
        )


def open_store(args: argparse.Namespace) -> tuple[Any, str]:
    """The read-only store and the chosen modality."""
    from astrofm.downstream.store import EmbeddingStore

    store = EmbeddingStore.open(args.store)
    return store, store.default_modality(args.modality)


def output_dir(args: argparse.Namespace) -> Path:
    args.out.mkdir(parents=True, exist_ok=True)
    return args.out


def write_json(path: Path, payload: Any) -> Path:
    atomic_write_text(path, json.dumps(payload, indent=2, default=_plain) + "\n")
    return path


def write_table(table: Any, path: Path) -> Path:
    """An astropy table as ECSV (or CSV, by suffix), atomically."""
    fmt = "ascii.csv" if path.suffix == ".csv" else "ascii.ecsv"
    with atomic_path(path, suffix=path.suffix) as tmp:
        table.write(tmp, format=fmt, overwrite=True)
    return path


def print_table(table: Any, columns: Sequence[str], *, max_rows: int = 50) -> None:
    """Aligned text of some columns of a table (floats with 4 significant digits)."""
    rows = [[_cell(table[c][i]) for c in columns] for i in range(min(len(table), max_rows))]
    widths = [max([len(c)] + [len(r[j]) for r in rows]) for j, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    if len(table) > max_rows:
        print(f"... {len(table) - max_rows} more rows")


def _cell(value: Any) -> str:
    if isinstance(value, float) or (getattr(value, "dtype", None) is not None and value.dtype.kind == "f"):
        return f"{float(value):.4g}"
    return str(value)


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")
