"""Hugging Face interop: MMU's hub schema (Parquet) in and out.

MMU publishes hub copies as Parquet files in the ``datasets`` feature schema:
``object_id`` (string), the modality features (``image``, ``spectrum``,
``lightcurve``: Sequences of per-band / per-pixel fields) and scalar catalog
columns. ``HFDataset`` reads such a copy, local or on the hub, into astrofm's
sample contract, streaming it row group by row group; recent ``datasets``
releases no longer run MMU's loading scripts, so no script is needed.
``to_hf_dataset`` and ``export_parquet`` go the other way.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.data.dataset import BlockRef, MMUDataset
from astrofm.data.modalities import ARRAY_MODALITIES, LightCurveModality, Sample, TabularModality
from astrofm.data.schema import object_id_str
from astrofm.errors import DataFormatError
from astrofm.utils.atomic import atomic_path

log = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^(?:hf://(?:datasets/)?)?([A-Za-z0-9][\w.-]*/[\w.-]+)(?:@([\w./-]+))?$")


def parse_hub_id(text: str) -> tuple[str, str | None] | None:
    """``hf://owner/name@rev``, ``owner/name@rev`` or ``owner/name`` -> (repo id, revision or None)."""
    match = _HUB_ID.match(text.strip())
    return (match.group(1), match.group(2)) if match else None


def hf_features(source: MMUDataset) -> Any:
    """The ``datasets.Features`` of a dataset in MMU's hub schema."""
    from datasets import Features, Value

    features: dict[str, Any] = {"object_id": Value("string"), "ra": Value("float64"), "dec": Value("float64")}
    for name, plugin in source.plugins.items():
        if isinstance(plugin, TabularModality):
            features.update({c: Value("float32") for c in plugin.column_names})
        else:
            features[name] = plugin.hf_feature(source.dims(name))
    for target in source.target_columns:
        dtype = source.shards[0].columns[target].dtype
        features[target] = Value("string" if dtype.kind in "SU" else "float64" if dtype.kind == "f" else "int64")
    return Features(features)


def sample_to_example(sample: Sample, source: MMUDataset) -> dict[str, Any]:
    """One sample as a hub-schema example."""
    example: dict[str, Any] = {"object_id": sample["object_id"], "ra": sample.get("ra"), "dec": sample.get("dec")}
    for name, plugin in source.plugins.items():
        if isinstance(plugin, TabularModality):
            example.update({c: float(v) for c, v in zip(plugin.column_names, sample[name]["values"])})
        else:  # None: the object lacks this modality
            example[name] = plugin.to_hf(sample[name]) if name in sample else None
    example.update(sample.get("targets", {}))
    return example


def to_hf_dataset(source: MMUDataset, *, streaming: bool = False) -> Any:
    """The dataset as a ``datasets.Dataset`` (or ``IterableDataset`` if ``streaming``)."""
    import datasets

    features = hf_features(source)
    path, kwargs = str(source.path), {"modalities": list(source.modalities if "tabular" not in source.plugins else
                                                         [m for m in source.modalities if m != "tabular"])}
    tabular = source.plugins.get("tabular")
    gen_kwargs = {"path": path, "options": {**kwargs,
                                            "tabular_columns": list(tabular.column_names) if isinstance(
                                                tabular, TabularModality) else [],
                                            "target_columns": list(source.target_columns)}}
    if streaming:
        return datasets.IterableDataset.from_generator(_examples, features=features, gen_kwargs=gen_kwargs)
    return datasets.Dataset.from_generator(_examples, features=features, gen_kwargs=gen_kwargs)


def _examples(path: str, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    source = MMUDataset(path, **options)
    for sample in source:
        yield sample_to_example(sample, source)


def export_parquet(source: MMUDataset, out_dir: str | Path, *, rows_per_file: int = 10_000) -> list[Path]:
    """Write the dataset as Parquet files in the hub schema (``train-00000-of-0000N.parquet``), atomically."""
    import datasets

    out_dir = Path(out_dir)
    features = hf_features(source)
    n_files = max(1, -(-len(source) // rows_per_file))
    paths: list[Path] = []
    rows: list[dict[str, Any]] = []

    def flush() -> None:
        path = out_dir / f"train-{len(paths):05d}-of-{n_files:05d}.parquet"
        with atomic_path(path, suffix=".parquet.tmp") as tmp:
            datasets.Dataset.from_list(rows, features=features).to_parquet(str(tmp))
        paths.append(path)
        rows.clear()

    for sample in source:
        rows.append(sample_to_example(sample, source))
        if len(rows) == rows_per_file:
            flush()
    if rows:
        flush()
    return paths


class HFDataset:
    """A dataset in MMU's hub schema: a local Parquet copy or a hub repo, read in streaming row groups.

    Use ``HFDataset.from_parquet(path)`` or ``HFDataset.from_hub(repo_id, revision=...)``.
    ``datasets`` resolves the hub's data files and decodes its feature schema;
    the Parquet files are read one row group at a time (over HTTP range
    requests for the hub), so memory stays bounded and each row group is a
    block of the streaming loader.
    """

    def __init__(self, files: Sequence[str], *, name: str, location: str, modalities: Sequence[str] | None = None,
                 tabular_columns: Sequence[str] = (), target_columns: Sequence[str] = ()) -> None:
        import datasets

        if not files:
            raise DataFormatError(location, "no Parquet files found", expected="*.parquet", found="none")
        self.name = name
        self.location = location
        self.files = list(files)
        self._groups: list[list[int]] = []  # per file: row offsets of its row groups (+ total)
        schema = None
        for f in self.files:
            with self._parquet(f) as parquet:
                sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
                schema = schema or parquet.schema_arrow
            self._groups.append([0, *np.cumsum(sizes).tolist()])
        self.features = datasets.Features.from_arrow_schema(schema)
        found = [m for m in ARRAY_MODALITIES if m in self.features]
        chosen = list(modalities) if modalities is not None else found
        for m in chosen:
            if m not in self.features:
                raise DataFormatError(location, "modality not in dataset features", field=m,
                                      expected=f"feature '{m}'", found=sorted(self.features))
        self.plugins: dict[str, Any] = {m: ARRAY_MODALITIES[m] for m in chosen}
        if "lightcurve" in self.plugins:
            self.plugins["lightcurve"] = LightCurveModality(self._lightcurve_bands())
        if tabular_columns:
            missing = [c for c in tabular_columns if c not in self.features]
            if missing:
                raise DataFormatError(location, "tabular column not in dataset features", field=missing[0],
                                      expected="a scalar feature", found=sorted(self.features))
            self.plugins["tabular"] = TabularModality(tabular_columns)
        self.target_columns = tuple(target_columns)
        for t in self.target_columns:
            if t not in self.features:
                raise DataFormatError(location, "target column not in dataset features", field=t,
                                      expected="a scalar feature", found=sorted(self.features))

    @classmethod
    def from_parquet(cls, path: str | Path, **options: Any) -> HFDataset:
        """A local Parquet copy: one ``.parquet`` file or a folder of them (sorted by name)."""
        path = Path(path)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("."))
        return cls([str(f) for f in files], name=path.stem, location=str(path), **options)

    @classmethod
    def from_hub(cls, repo_id: str, *, revision: str | None = None, split: str = "train",
                 **options: Any) -> HFDataset:
        """A hub dataset repo (e.g. a MultimodalUniverse copy); files resolved by ``datasets``."""
        import datasets

        location = f"hf://{repo_id}@{revision or 'main'}"
        try:
            builder = datasets.load_dataset_builder(repo_id, revision=revision)
            files = [str(f) for f in builder.config.data_files[split]]
        except Exception as error:  # network, auth, missing split: all surface here
            raise DataFormatError(location, "cannot open hub dataset",
                                  found=f"{type(error).__name__}: {error}") from error
        return cls([f for f in files if f.endswith(".parquet")], name=repo_id.split("/")[-1], location=location,
                   **options)

    @contextlib.contextmanager
    def _parquet(self, file: str) -> Iterator[Any]:
        """An open ``pyarrow.parquet.ParquetFile`` (local path or fsspec URL such as hf://...)."""
        import fsspec
        import pyarrow.parquet as pq

        try:
            with fsspec.open(file, "rb") as handle:
                yield pq.ParquetFile(handle)
        except DataFormatError:
            raise
        except Exception as error:  # pyarrow and fsspec raise many types for missing/corrupt files
            raise DataFormatError(file, "not a readable Parquet file",
                                  found=f"{type(error).__name__}: {error}") from error

    def _lightcurve_bands(self) -> list[str]:
        """Every light-curve band name of the dataset, in order of first appearance file by file: the list that
        band indices point into, the same for every object (read from the band strings alone, once at open)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        names: dict[str, None] = {}
        for f in self.files:
            with self._parquet(f) as parquet:
                paths = [parquet.schema.column(i).path for i in range(len(parquet.schema))]
                leaf = next((p for p in paths if p.split(".")[0] == "lightcurve" and "band" in p.split(".")[1:]),
                            None)
                if leaf is None:
                    raise DataFormatError(f, "light-curve feature without band names", field="lightcurve.band",
                                          expected="a string field 'band'", found=[p for p in paths
                                                                                   if p.startswith("lightcurve.")])
                values = parquet.read(columns=[leaf]).column(0).combine_chunks()
            while pa.types.is_struct(values.type) or pa.types.is_list(values.type) or pa.types.is_large_list(
                    values.type) or pa.types.is_fixed_size_list(values.type):  # down to the band strings
                values = values.flatten()[0] if pa.types.is_struct(values.type) else values.flatten()
            names.update(dict.fromkeys(str(b) for b in pc.unique(values).to_pylist() if b is not None))
        return list(names)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.plugins)

    def __len__(self) -> int:
        return sum(g[-1] for g in self._groups)

    def blocks(self, block_size: int) -> list[BlockRef]:
        """One block per Parquet row group."""
        return [BlockRef(f, offsets[g], offsets[g + 1]) for f, offsets in enumerate(self._groups)
                for g in range(len(offsets) - 1)]

    def _read(self, ref: BlockRef, start: int, stop: int) -> dict[str, Any]:
        """Decoded columns (numpy) of rows ref.start+start .. ref.start+stop."""
        import datasets
        from datasets.table import InMemoryTable

        offsets = self._groups[ref.file]
        first = ref.start + start
        last = ref.start + stop
        groups = [g for g in range(len(offsets) - 1) if offsets[g] < last and offsets[g + 1] > first]
        with self._parquet(self.files[ref.file]) as parquet:
            table = parquet.read_row_groups(groups)
        table = table.slice(first - offsets[groups[0]], last - first)
        view = datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(features=self.features))
        return view.with_format("numpy")[:]

    def _samples(self, columns: dict[str, Any]) -> list[Sample]:
        samples = []
        for i, oid in enumerate(columns["object_id"]):
            sample: Sample = {"object_id": object_id_str(oid)}
            for key in ("ra", "dec"):
                if key in columns and columns[key][i] is not None:
                    sample[key] = float(columns[key][i])
            for name, plugin in self.plugins.items():
                value = ({c: columns[c][i] for c in plugin.column_names} if isinstance(plugin, TabularModality)
                         else columns[name][i])
                if value is None:
                    continue
                try:
                    sample[name] = plugin.from_hf(value)
                except KeyError as error:
                    raise DataFormatError(self.location, f"malformed '{name}' feature", object_id=sample["object_id"],
                                          field=f"{name}.{error.args[0]}", expected="a field of that name",
                                          found="no such field") from error
                except (TypeError, ValueError) as error:
                    raise DataFormatError(self.location, f"malformed '{name}' feature", object_id=sample["object_id"],
                                          field=name, found=str(error)) from error
            if self.target_columns:
                sample["targets"] = {t: _plain(columns[t][i]) for t in self.target_columns}
            samples.append(sample)
        return samples

    def read_block(self, ref: BlockRef) -> list[Sample]:
        return self._samples(self._read(ref, 0, ref.length or 0))

    def iter_block(self, ref: BlockRef, start: int = 0) -> Iterator[Sample]:
        yield from self._samples(self._read(ref, start, ref.length or 0))

    def read_block_rows(self, ref: BlockRef, rows: Sequence[int]) -> list[Sample]:
        samples = self.read_block(ref)
        return [samples[int(r)] for r in rows]

    def __iter__(self) -> Iterator[Sample]:
        for ref in self.blocks(0):
            yield from self.iter_block(ref)

    def __repr__(self) -> str:
        return f"HFDataset({self.location!r}, files={len(self.files)}, modalities={list(self.modalities)})"


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value
