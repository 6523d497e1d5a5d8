"""Per-modality schemas of the Multimodal Universe (MMU) HDF5 columns.

A schema lists, for one modality, the columns a shard holds: name, dtype,
shape (symbolic, after the object axis N), unit and value constraints. Shards
are validated against it when opened (names, dtypes, shapes) and when rows are
read or written (values: NaN/inf, negative inverse variances).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from astrofm.errors import DataFormatError

#: Standard columns every MMU shard carries (PLAsTiCC/TESS lack ``healpix``).
OBJECT_ID = "object_id"
RA = "ra"
DEC = "dec"
HEALPIX = "healpix"
STANDARD_COLUMNS = (OBJECT_ID, RA, DEC, HEALPIX)
HEALPIX_NSIDE = 16


def dtype_code(dtype: np.dtype) -> str:
    """Short dtype code independent of byte order: ``f4``, ``i8``, ``b1``, ``S16``."""
    dtype = np.dtype(dtype)
    if dtype.kind in "SU":
        return f"{dtype.kind}{dtype.itemsize // (4 if dtype.kind == 'U' else 1)}"
    return f"{dtype.kind}{dtype.itemsize}"


def dtype_matches(dtype: np.dtype, allowed: tuple[str, ...]) -> bool:
    """True if ``dtype`` matches one of the codes: exact (``f4``) or by kind (``S``, ``i``)."""
    code = dtype_code(dtype)
    kind = np.dtype(dtype).kind
    return any(code == a or (len(a) == 1 and kind == a) for a in allowed)


@dataclass(frozen=True)
class FieldSpec:
    """One HDF5 column of a modality.

    ``dims`` are symbolic axis names after the object axis; the same name must
    bind to the same length across the modality's columns. ``alt_dims`` lists
    other accepted shapes (Legacy Survey stores one ``image_mask`` for all bands).
    """

    name: str
    dtypes: tuple[str, ...]
    dims: tuple[str, ...]
    unit: str = ""
    required: bool = True
    finite: bool = True
    minimum: float | None = None
    alt_dims: tuple[tuple[str, ...], ...] = ()
    description: str = ""
    write_dtype: str | None = None

    @property
    def all_dims(self) -> tuple[tuple[str, ...], ...]:
        return (self.dims, *self.alt_dims)


@dataclass(frozen=True)
class ModalitySchema:
    """The columns of one modality in an MMU shard."""

    name: str
    fields: tuple[FieldSpec, ...]
    description: str = ""
    _by_name: dict[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})

    def __getitem__(self, name: str) -> FieldSpec:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def marker(self) -> str:
        """The column whose presence marks this modality in a shard (its first field)."""
        return self.fields[0].name

    def present_in(self, columns: Mapping[str, object]) -> bool:
        """True if any column of this modality is in ``columns`` (then all required ones must be)."""
        return any(f.name in columns for f in self.fields)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    def validate_layout(
        self, file: object, columns: Mapping[str, tuple[tuple[int, ...], np.dtype]], n_objects: int
    ) -> dict[str, int]:
        """Check names, dtypes and shapes of this modality's columns.

        ``columns`` maps column name to (full shape, dtype). Returns the bound
        symbolic dimensions, e.g. ``{"B": 4, "H": 64, "W": 64}``.
        """
        dims: dict[str, int] = {}
        for spec in self.fields:
            if spec.name not in columns:
                if spec.required:
                    raise DataFormatError(
                        file, f"missing column of modality '{self.name}'", field=spec.name,
                        expected=f"a dataset of shape (N, {', '.join(spec.dims)})", found="no such column",
                    )
                continue
            shape, dtype = columns[spec.name]
            if not dtype_matches(dtype, spec.dtypes):
                raise DataFormatError(
                    file, "wrong dtype", field=spec.name,
                    expected=" or ".join(spec.dtypes), found=dtype_code(dtype),
                )
            if len(shape) == 0 or shape[0] != n_objects:
                raise DataFormatError(
                    file, "wrong length along the object axis", field=spec.name,
                    expected=f"{n_objects} rows", found=f"shape {tuple(shape)}",
                )
            dims.update(_bind_dims(file, spec, tuple(shape[1:]), dims))
        return dims

    def check_values(self, file: object, name: str, values: np.ndarray, object_ids: np.ndarray) -> None:
        """Reject NaN/inf and values below the field's minimum, naming the first bad object.

        Finiteness is screened with one row-sum pass (NaN and inf propagate);
        only rows whose sum is not finite are inspected element by element.
        """
        spec = self._by_name.get(name)
        if spec is None or values.dtype.kind not in "fc" or values.size == 0:
            return
        flat = values.reshape(len(values), -1)
        if spec.finite:
            with np.errstate(over="ignore", invalid="ignore"):
                suspicious = np.flatnonzero(~np.isfinite(np.add.reduce(flat, axis=1)))
            for i in suspicious:
                bad = ~np.isfinite(flat[i])
                if bad.any():
                    raise DataFormatError(
                        file, "non-finite values", object_id=object_id_str(object_ids[i]), field=name,
                        expected="finite numbers", found=f"{int(bad.sum())} NaN/inf entries",
                    )
        if spec.minimum is not None:
            with np.errstate(invalid="ignore"):
                low = np.flatnonzero(~(flat.min(axis=1) >= spec.minimum))
            for i in low:
                if (flat[i] < spec.minimum).any() or np.isnan(flat[i]).any():
                    raise DataFormatError(
                        file, "value below the allowed minimum", object_id=object_id_str(object_ids[i]), field=name,
                        expected=f">= {spec.minimum}", found=float(np.nanmin(flat[i])),
                    )


def _bind_dims(
    file: object, spec: FieldSpec, shape: tuple[int, ...], bound: Mapping[str, int]
) -> dict[str, int]:
    """Match ``shape`` against the spec's accepted symbolic shapes."""
    problems = []
    for dims in spec.all_dims:
        if len(dims) != len(shape):
            problems.append(f"(N, {', '.join(dims)})")
            continue
        new: dict[str, int] = {}
        ok = True
        for name, size in zip(dims, shape):
            if name.isdigit():
                ok &= int(name) == size
            elif (name in bound and bound[name] != size) or (name in new and new[name] != size):
                ok = False
            else:
                new[name] = size
        if ok:
            return new
        problems.append("(N, " + ", ".join(str(bound.get(d, d)) for d in dims) + ")")
    raise DataFormatError(
        file, "wrong shape", field=spec.name, expected=" or ".join(problems), found=f"(N, {', '.join(map(str, shape))})"
    )


def object_id_str(value: object) -> str:
    """An object_id as text: bytes decoded as UTF-8, numbers in decimal."""
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace").strip("\x00")
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)



IMAGE_SCHEMA = ModalitySchema(
    "image",
    (
        FieldSpec("image_array", ("f4",), ("B", "H", "W"), "nanomaggies", description="pixel values per band",
                  write_dtype="float32"),
        FieldSpec("image_ivar", ("f4",), ("B", "H", "W"), "nanomaggies^-2", required=False, minimum=0.0,
                  description="inverse variance per pixel", write_dtype="float32"),
        FieldSpec("image_mask", ("b1",), ("B", "H", "W"), required=False, alt_dims=(("H", "W"),),
                  description="True = good pixel (MMU image polarity)", write_dtype="bool"),
        FieldSpec("image_band", ("S",), ("B",), required=False, description="band names, e.g. des-g"),
        FieldSpec("image_psf_fwhm", ("f4",), ("B",), "arcsec", required=False, minimum=0.0,
                  write_dtype="float32"),
        FieldSpec("image_scale", ("f4",), ("B",), "arcsec/pixel", required=False, minimum=0.0,
                  write_dtype="float32"),
    ),
    "Multi-band cutouts (Legacy Survey, HSC, ...).",
)

SPECTRUM_SCHEMA = ModalitySchema(
    "spectrum",
    (
        FieldSpec("spectrum_flux", ("f4",), ("L",), "1e-17 erg/s/cm^2/Å", write_dtype="float32"),
        FieldSpec("spectrum_ivar", ("f4",), ("L",), "(1e-17 erg/s/cm^2/Å)^-2", required=False, minimum=0.0,
                  write_dtype="float32"),
        FieldSpec("spectrum_lambda", ("f4",), ("L",), "Å", description="observed-frame wavelength; -1 pads",
                  write_dtype="float32"),
        FieldSpec("spectrum_mask", ("b1",), ("L",), required=False,
                  description="True = bad pixel (MMU spectrum polarity)", write_dtype="bool"),
        FieldSpec("spectrum_lsf_sigma", ("f4",), ("L",), "pixel", required=False, write_dtype="float32"),
    ),
    "1-D spectra (DESI, SDSS, LAMOST-like, ...).",
)

LIGHTCURVE_SCHEMA = ModalitySchema(
    "lightcurve",
    (
        FieldSpec("lightcurve", ("f8", "f4"), ("B", "3", "L"), "(MJD, flux, flux_err)",
                  description="per band: time (MJD), flux, flux_err; zero-padded (flux_err=0 marks padding)",
                  write_dtype="float64"),
        FieldSpec("lightcurve_band", ("S",), ("B",), required=False, description="band names per row"),
    ),
    "Multi-band light curves in the PLAsTiCC column layout (N, bands, 3, L).",
)

SCHEMAS: dict[str, ModalitySchema] = {
    s.name: s for s in (IMAGE_SCHEMA, SPECTRUM_SCHEMA, LIGHTCURVE_SCHEMA)
}
