"""Validate a dataset or shard completely and summarize it (``astrofm inspect``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from astrofm.data.dataset import MMUDataset
from astrofm.data.schema import SCHEMAS, dtype_code


def inspect_dataset(path: str | Path, *, block_size: int = 512, progress: bool = True) -> dict[str, Any]:
    """Open every shard (layout check), read every row (value check) and summarize.

    Raises ``DataFormatError`` naming the file, object and field at the first
    problem. Returns a JSON-serializable summary.
    """
    path = Path(path)
    if path.suffix == ".parquet" or (path.is_dir() and any(path.rglob("*.parquet")) and not any(path.rglob("*.hdf5"))):
        return _inspect_parquet(path, progress=progress)
    dataset = MMUDataset(path)
    blocks = dataset.blocks(block_size)
    for ref in tqdm(blocks, desc=f"validating {dataset.name}", unit="block", disable=not progress):
        shard = dataset.shards[ref.file]
        shard.read([c for c in shard.columns if c in _modality_columns() or c in ("ra", "dec")], ref.start, ref.stop)
    for shard in dataset.shards:
        _check_healpix(shard)
    first = dataset.shards[0]
    fields = {
        name: {"shape": ["N", *info.shape[1:]], "dtype": dtype_code(info.dtype),
               "unit": _unit(name)}
        for name, info in first.columns.items()
    }
    pixels = np.unique(np.concatenate([s.healpix() for s in dataset.shards]))
    return {
        "path": str(path),
        "format": "mmu-hdf5",
        "n_objects": len(dataset),
        "n_shards": len(dataset.shards),
        "modalities": {m: dataset.dims(m) for m in dataset.modalities},
        "fields": fields,
        "catalog_columns": first.catalog_columns(),
        "healpix_pixels": pixels.tolist(),
        "valid": True,
    }


def _inspect_parquet(path: Path, *, progress: bool) -> dict[str, Any]:
    from astrofm.data.hf import HFDataset

    dataset = HFDataset.from_parquet(path)
    n = 0
    for ref in tqdm(dataset.blocks(0), desc=f"validating {dataset.name}", unit="row group", disable=not progress):
        n += len(dataset.read_block(ref))
    return {
        "path": str(path),
        "format": "hf-parquet",
        "n_objects": n,
        "n_files": len(dataset.files),
        "modalities": list(dataset.modalities),
        "fields": {k: str(v) for k, v in dataset.features.items()},
        "valid": True,
    }


def _check_healpix(shard: Any) -> None:
    """Stored healpix values (column and ``healpix=N`` folder) must agree with ra/dec."""
    from astrofm.data.layout import healpix_index, healpix_of_path
    from astrofm.data.schema import object_id_str
    from astrofm.errors import DataFormatError

    if shard._names["ra"] is None:
        return
    computed = healpix_index(*shard.coordinates())
    stored = shard.healpix()
    bad = np.flatnonzero(computed != stored)
    if len(bad):
        i = int(bad[0])
        raise DataFormatError(shard.path, "healpix disagrees with ra/dec (NESTED, nside 16)",
                              object_id=object_id_str(shard.object_ids[i]), field="healpix",
                              expected=int(computed[i]), found=int(stored[i]))
    folder = healpix_of_path(shard.path)
    if folder is not None and folder != -1 and not (computed == folder).all():
        i = int(np.flatnonzero(computed != folder)[0])
        raise DataFormatError(shard.path, "object outside its healpix=N folder", object_id=object_id_str(
            shard.object_ids[i]), field="healpix", expected=folder, found=int(computed[i]))


def _modality_columns() -> set[str]:
    return {f.name for schema in SCHEMAS.values() for f in schema.fields}


def _unit(name: str) -> str:
    for schema in SCHEMAS.values():
        if name in schema:
            return schema[name].unit
    return {"ra": "deg", "dec": "deg"}.get(name, "")
