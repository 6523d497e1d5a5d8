"""Data-side modality plugins: how each modality is read from MMU columns into samples.

A *sample* is one object as a dict::

    {"object_id": "39627...", "ra": 150.1, "dec": 2.2,
     "image": {...}, "spectrum": {...}, "lightcurve": {...}, "tabular": {...},
     "targets": {"Z": 0.31}}

Each modality key is present only if the object has that modality. The field
names inside a modality follow the MMU Hugging Face feature schema, and keep
MMU's mask polarities (image ``mask`` True = good pixel, spectrum ``mask``
True = bad pixel):

- image: ``flux`` (B, H, W) float32 [nanomaggies], ``ivar``, ``mask``,
  ``band`` (list of names), ``psf_fwhm`` (B,) [arcsec], ``scale`` (B,) [arcsec/px];
- spectrum: ``flux`` (L,) [1e-17 erg/s/cm²/Å], ``ivar``, ``lambda`` (L,) [Å],
  ``mask`` (L,) bool, ``lsf_sigma`` (L,) [px];
- lightcurve: ``time`` (L,) [MJD], ``flux``, ``flux_err``, ``band`` (L,) int
  index into ``band_names``; padding dropped, points sorted by band then time;
- tabular: ``values`` (F,) float32 with NaN for missing, names on the plugin.

A plugin converts between a block of MMU columns and per-object samples, and
between samples and Hugging Face examples. Adding a modality means adding a
plugin here and registering it; nothing else in the data layer changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from astrofm.data.schema import (
    IMAGE_SCHEMA,
    LIGHTCURVE_SCHEMA,
    SCHEMAS,
    SPECTRUM_SCHEMA,
    ModalitySchema,
    dtype_code,
)
from astrofm.errors import DataFormatError

Sample = dict[str, Any]


def _decode(values: np.ndarray) -> list[str]:
    return [v.decode("utf-8").strip("\x00") if isinstance(v, bytes | np.bytes_) else str(v) for v in values]


def _encode_bands(rows: Sequence[Sequence[str]]) -> np.ndarray:
    """Per-row band names as UTF-8 fixed-length bytes, as long as the longest encoded name (never truncated)."""
    return np.char.encode(np.array(rows, dtype=str), "utf-8")


def _band_names(bands: np.ndarray | None, n: int, n_bands: int) -> list[list[str]]:
    """Per-row band names of a block (each row decoded once per distinct value; a fresh list per row)."""
    if bands is None:
        return [[f"band{b}" for b in range(n_bands)] for _ in range(n)]
    decoded: dict[bytes, list[str]] = {}
    out = []
    for row in bands[:n]:
        key = row.tobytes()
        if key not in decoded:
            decoded[key] = _decode(row)
        out.append(list(decoded[key]))
    return out


class DataModality(ABC):
    """How one modality maps MMU columns to sample fields and back."""

    name: ClassVar[str]
    schema: ClassVar[ModalitySchema | None] = None
    #: Sample field whose axis 0 is the variable-length sequence axis (None: fixed size).
    sequence_field: ClassVar[str | None] = None
    #: Every row of a block has the same field shapes, so ``block_fields`` gives the block in columnar form.
    columnar: ClassVar[bool] = True

    def columns(self, available: Sequence[str]) -> list[str]:
        """The MMU columns this modality reads, among ``available``."""
        assert self.schema is not None
        return [f.name for f in self.schema.fields if f.name in available]

    def block_fields(self, block: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
        """The sample fields of a block of ``n`` rows in columnar form: arrays with a leading row axis (views of
        the block where possible) or lists with one entry per row. Modalities whose rows differ in shape
        set ``columnar = False`` and override ``to_samples`` instead."""
        raise NotImplementedError(f"modality '{self.name}' has no columnar form")

    def to_samples(self, block: Mapping[str, np.ndarray], n: int) -> list[dict[str, Any]]:
        """Per-object modality dicts from a block of ``n`` rows of MMU columns."""
        fields = self.block_fields(block, n)
        return [{key: values[i] for key, values in fields.items()} for i in range(n)]

    @abstractmethod
    def to_columns(self, items: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """MMU columns (stacked, padded) from per-object modality dicts."""

    @abstractmethod
    def hf_feature(self, dims: Mapping[str, int]) -> Any:
        """The ``datasets`` feature of this modality for the given symbolic dims."""

    @abstractmethod
    def to_hf(self, item: Mapping[str, Any]) -> Any:
        """A Hugging Face example value from one modality dict."""

    @abstractmethod
    def from_hf(self, value: Any) -> dict[str, Any]:
        """One modality dict from a Hugging Face example value."""


class ImageModality(DataModality):
    name = "image"
    schema = IMAGE_SCHEMA

    def block_fields(self, block: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
        flux = block["image_array"][:n]
        n_bands = flux.shape[1]
        ivar, mask = block.get("image_ivar"), block.get("image_mask")
        if mask is not None and mask.ndim == 3:  # Legacy Survey: one mask for all bands
            mask = np.broadcast_to(mask[:n, None], flux.shape)
        psf, scale = block.get("image_psf_fwhm"), block.get("image_scale")
        return {
            "flux": flux,
            "ivar": ivar[:n] if ivar is not None else np.broadcast_to(np.float32(1), flux.shape),
            "mask": mask[:n] if mask is not None else np.broadcast_to(True, flux.shape),
            "band": _band_names(block.get("image_band"), n, n_bands),
            "psf_fwhm": psf[:n] if psf is not None else np.full((n, n_bands), np.nan, np.float32),
            "scale": scale[:n] if scale is not None else np.full((n, n_bands), np.nan, np.float32),
        }

    def to_columns(self, items: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        masks = np.stack([np.asarray(it["mask"], bool) for it in items])
        shared = bool(masks.shape[1] > 1 and (masks == masks[:, :1]).all())
        return {
            "image_array": np.stack([it["flux"] for it in items]).astype(np.float32),
            "image_ivar": np.stack([it["ivar"] for it in items]).astype(np.float32),
            "image_mask": masks[:, 0] if shared else masks,
            "image_band": _encode_bands([list(it["band"]) for it in items]),
            "image_psf_fwhm": np.stack([it["psf_fwhm"] for it in items]).astype(np.float32),
            "image_scale": np.stack([it["scale"] for it in items]).astype(np.float32),
        }

    def hf_feature(self, dims: Mapping[str, int]) -> Any:
        from datasets import Array2D, Sequence, Value

        shape = (dims["H"], dims["W"])
        return Sequence({
            "band": Value("string"),
            "flux": Array2D(shape=shape, dtype="float32"),
            "ivar": Array2D(shape=shape, dtype="float32"),
            "mask": Array2D(shape=shape, dtype="bool"),
            "psf_fwhm": Value("float32"),
            "scale": Value("float32"),
        })

    def to_hf(self, item: Mapping[str, Any]) -> Any:
        return {"band": list(item["band"]), **{k: np.asarray(item[k]) for k in ("flux", "ivar", "mask", "psf_fwhm",
                                                                                  "scale")}}

    def from_hf(self, value: Any) -> dict[str, Any]:
        value = _columns_of(value)
        return {
            "flux": np.asarray(value["flux"], dtype=np.float32),
            "ivar": np.asarray(value["ivar"], dtype=np.float32),
            "mask": np.asarray(value["mask"], dtype=bool),
            "band": [str(b) for b in value["band"]],
            "psf_fwhm": np.asarray(value["psf_fwhm"], dtype=np.float32),
            "scale": np.asarray(value["scale"], dtype=np.float32),
        }


class SpectrumModality(DataModality):
    name = "spectrum"
    schema = SPECTRUM_SCHEMA
    sequence_field = "flux"
    _fields = ("flux", "ivar", "lambda", "mask", "lsf_sigma")

    def block_fields(self, block: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
        flux = block["spectrum_flux"][:n]
        defaults = {"ivar": np.float32(1), "mask": False, "lsf_sigma": np.float32(0)}
        fields = {}
        for f in self._fields:
            column = block.get(f"spectrum_{f}") if f in defaults else block[f"spectrum_{f}"]
            fields[f] = column[:n] if column is not None else np.broadcast_to(defaults[f], flux.shape)
        return fields

    def to_columns(self, items: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        length = max(len(it["flux"]) for it in items)
        pad_values = {"flux": "edge", "ivar": 0.0, "lambda": -1.0, "mask": True, "lsf_sigma": 0.0}
        columns = {}
        for f in self._fields:
            dtype = bool if f == "mask" else np.float32
            columns[f"spectrum_{f}"] = np.stack([
                _pad1d(np.asarray(it[f], dtype=dtype), length, pad_values[f]) for it in items
            ])
        return columns

    def hf_feature(self, dims: Mapping[str, int]) -> Any:
        from datasets import Sequence, Value

        return Sequence({"flux": Value("float32"), "ivar": Value("float32"), "lsf_sigma": Value("float32"),
                         "lambda": Value("float32"), "mask": Value("bool")})

    def to_hf(self, item: Mapping[str, Any]) -> Any:
        return {f: np.asarray(item[f]) for f in ("flux", "ivar", "lsf_sigma", "lambda", "mask")}

    def from_hf(self, value: Any) -> dict[str, Any]:
        value = _columns_of(value)
        return {f: np.asarray(value[f], dtype=bool if f == "mask" else np.float32) for f in self._fields}


class LightCurveModality(DataModality):
    """Light curves; ``band_names``: the dataset's bands in index order, which ``from_hf`` maps the hub schema's
    band strings through (None: each object's own bands in order of appearance, only right for a lone object)."""

    name = "lightcurve"
    schema = LIGHTCURVE_SCHEMA
    sequence_field = "time"
    columnar = False  # padding is dropped: every curve has its own length

    def __init__(self, band_names: Sequence[str] | None = None) -> None:
        self.band_names = None if band_names is None else list(band_names)

    def to_samples(self, block: Mapping[str, np.ndarray], n: int) -> list[dict[str, Any]]:
        curves = block["lightcurve"]  # (n, B, 3, L)
        names_of = _band_names(block.get("lightcurve_band"), n, curves.shape[1])
        out = []
        for i in range(n):
            names = names_of[i]
            real = curves[i, :, 2, :] > 0  # flux_err = 0 marks padding
            band_index, point = np.nonzero(real)
            out.append({
                "time": curves[i, band_index, 0, point],
                "flux": curves[i, band_index, 1, point],
                "flux_err": curves[i, band_index, 2, point],
                "band": band_index.astype(np.int64),
                "band_names": names,
            })
        return out

    def to_columns(self, items: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        names = list(items[0]["band_names"])
        for it in items:
            if list(it["band_names"]) != names:
                raise DataFormatError(None, "light curves in one shard must share their band list",
                                      field="lightcurve_band", expected=names, found=list(it["band_names"]))
        per_band = [[np.flatnonzero(np.asarray(it["band"]) == b) for b in range(len(names))] for it in items]
        length = max(1, max(len(idx) for bands in per_band for idx in bands))
        curves = np.zeros((len(items), len(names), 3, length), np.float64)
        for i, (it, bands) in enumerate(zip(items, per_band)):
            for b, idx in enumerate(bands):
                order = idx[np.argsort(np.asarray(it["time"])[idx], kind="stable")]
                for k, key in enumerate(("time", "flux", "flux_err")):
                    curves[i, b, k, : len(order)] = np.asarray(it[key], np.float64)[order]
        return {"lightcurve": curves, "lightcurve_band": _encode_bands([names] * len(items))}

    def hf_feature(self, dims: Mapping[str, int]) -> Any:
        from datasets import Sequence, Value

        return Sequence({"band": Value("string"), "time": Value("float64"), "flux": Value("float64"),
                         "flux_err": Value("float64")})

    def to_hf(self, item: Mapping[str, Any]) -> Any:
        names = item["band_names"]
        return {"band": [names[b] for b in item["band"]], "time": np.asarray(item["time"], np.float64),
                "flux": np.asarray(item["flux"], np.float64), "flux_err": np.asarray(item["flux_err"], np.float64)}

    def from_hf(self, value: Any) -> dict[str, Any]:
        value = _columns_of(value)
        band_str = [str(b) for b in value["band"]]
        names = list(dict.fromkeys(band_str)) if self.band_names is None else self.band_names
        lookup = {b: i for i, b in enumerate(names)}
        unknown = next((b for b in band_str if b not in lookup), None)
        if unknown is not None:
            raise DataFormatError(None, "light-curve band not in the dataset's band list", field="lightcurve.band",
                                  expected=names, found=unknown)
        return {"time": np.asarray(value["time"], np.float64), "flux": np.asarray(value["flux"], np.float64),
                "flux_err": np.asarray(value["flux_err"], np.float64),
                "band": np.array([lookup[b] for b in band_str], np.int64), "band_names": list(names)}


class TabularModality(DataModality):
    """Scalar catalog columns as one feature vector; NaN/inf become missing (NaN)."""

    name = "tabular"

    def __init__(self, columns: Sequence[str]) -> None:
        if not columns:
            raise DataFormatError(None, "a tabular modality needs at least one column", field="tabular",
                                  expected="column names", found="none")
        self.column_names = tuple(columns)

    def columns(self, available: Sequence[str]) -> list[str]:
        """The tabular columns (``validate_layout`` has checked that each shard has them)."""
        return list(self.column_names)

    def validate_layout(self, file: object, layout: Mapping[str, tuple[tuple[int, ...], np.dtype]],
                        n_objects: int) -> None:
        """Check that each column is among a shard's catalog columns ``layout`` (name -> (shape, dtype)) and holds
        one number or bool per object."""
        for name in self.column_names:
            if name not in layout:
                raise DataFormatError(file, "tabular column not in shard", field=name, expected="a catalog column",
                                      found=f"available {sorted(layout)[:20]}")
            shape, dtype = layout[name]
            if shape != (n_objects,) or dtype.kind not in "biuf":
                raise DataFormatError(file, "a tabular column must hold one number or bool per object", field=name,
                                      expected=f"shape ({n_objects},), numeric or bool dtype",
                                      found=f"shape {shape}, dtype {dtype_code(dtype)}")

    def block_fields(self, block: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
        values = np.stack([np.asarray(block[c][:n], dtype=np.float64) for c in self.column_names], axis=1)
        values[~np.isfinite(values)] = np.nan
        return {"values": values.astype(np.float32)}

    def to_columns(self, items: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        values = np.stack([it["values"] for it in items]).astype(np.float32)
        return {c: values[:, j] for j, c in enumerate(self.column_names)}

    def hf_feature(self, dims: Mapping[str, int]) -> Any:
        raise NotImplementedError("tabular columns are top-level scalar features")

    def to_hf(self, item: Mapping[str, Any]) -> Any:
        raise NotImplementedError("tabular columns are top-level scalar features")

    def from_hf(self, value: Any) -> dict[str, Any]:
        values = np.array([np.nan if value.get(c) is None else value[c] for c in self.column_names], np.float64)
        values[~np.isfinite(values)] = np.nan
        return {"values": values.astype(np.float32)}


def _pad1d(values: np.ndarray, length: int, pad: object) -> np.ndarray:
    if len(values) == length:
        return values
    if pad == "edge":
        return np.pad(values, (0, length - len(values)), mode="edge")
    return np.pad(values, (0, length - len(values)), constant_values=pad)


def _columns_of(value: Any) -> Mapping[str, Any]:
    """HF stores a Sequence of dicts as a dict of lists; accept a list of dicts too."""
    if isinstance(value, Mapping):
        return value
    keys = value[0].keys() if len(value) else ()
    return {k: [v[k] for v in value] for k in keys}


#: The built-in array modalities, by name. Tabular modalities are made per dataset.
ARRAY_MODALITIES: dict[str, DataModality] = {
    m.name: m for m in (ImageModality(), SpectrumModality(), LightCurveModality())
}


def register_modality(plugin: DataModality) -> None:
    """Register a new array modality (e.g. IFU cubes) for every dataset reader and writer."""
    if plugin.schema is None:
        raise TypeError("an array modality needs a schema")
    ARRAY_MODALITIES[plugin.name] = plugin
    SCHEMAS[plugin.name] = plugin.schema
