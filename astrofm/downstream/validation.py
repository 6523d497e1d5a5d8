"""Checks shared by the downstream modules: object ids, embedding arrays, labels.

Every check raises :class:`astrofm.errors.DataFormatError` naming where the
data came from (``where``: a file or a description), the offending object_id
when there is one, and what was expected against what was found.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.errors import DataFormatError

Where = str | Path | None


def as_object_ids(values: Any, *, where: Where = None, field: str = "object_id") -> np.ndarray:
    """Object ids as a 1-D array of ``str``: bytes decoded as UTF-8, integers in decimal."""
    array = np.asarray(values)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise DataFormatError(
            where, "object ids must be one-dimensional", field=field, expected="(n,)", found=array.shape
        )
    if array.dtype.kind == "S":
        return np.char.rstrip(np.char.decode(array, "utf-8"), "\x00")
    if array.dtype.kind in "iu":
        return array.astype(str)
    if array.dtype.kind == "U":
        return array
    if array.dtype.kind == "O":
        out = [v.decode("utf-8") if isinstance(v, bytes) else v for v in array.tolist()]
        bad = next((v for v in out if not isinstance(v, str | int | np.integer) or isinstance(v, bool)), None)
        if bad is not None:
            raise DataFormatError(
                where,
                "object id is neither text nor an integer",
                field=field,
                expected="str or int",
                found=repr(bad),
            )
        return np.array([str(v) for v in out], dtype=str) if out else np.array([], dtype=str)
    raise DataFormatError(
        where,
        "object ids must be text or integers",
        field=field,
        expected="str, bytes or int dtype",
        found=array.dtype,
    )


def check_vectors(
    vectors: Any,
    *,
    where: Where = None,
    object_ids: Sequence[str] | np.ndarray | None = None,
    dim: int | None = None,
    field: str = "vectors",
) -> np.ndarray:
    """A finite float32 (n, D) array, or a clear error (wrong rank, wrong D, NaN/inf with its object_id)."""
    array = np.asarray(vectors)
    if array.ndim != 2:
        raise DataFormatError(
            where, "embeddings must be a 2-D array", field=field, expected="(n, D)", found=array.shape
        )
    if array.dtype.kind not in "fiu":
        raise DataFormatError(
            where, "embeddings must be numeric", field=field, expected="float32", found=array.dtype
        )
    if dim is not None and array.shape[1] != dim:
        raise DataFormatError(
            where, "embedding dimension mismatch", field=field, expected=dim, found=array.shape[1]
        )
    if object_ids is not None and len(object_ids) != len(array):
        raise DataFormatError(
            where,
            "number of object ids and embeddings differ",
            field="object_id",
            expected=len(array),
            found=len(object_ids),
        )
    array = np.asarray(array, dtype=np.float32)
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        object_id = str(object_ids[row]) if object_ids is not None else None
        raise DataFormatError(
            where,
            f"non-finite embedding (NaN or inf) in row {row}",
            object_id=object_id,
            field=field,
            expected="finite values",
            found=f"{int((~finite).sum())} rows with NaN/inf",
        )
    return array


def check_targets(
    values: Any, n: int, *, where: Where = None, field: str = "target", numeric: bool = True
) -> np.ndarray:
    """A 1-D target array of length ``n``: floats when ``numeric``; float targets (values or classes) finite."""
    array = np.asarray(values)
    if array.ndim != 1 or len(array) != n:
        raise DataFormatError(
            where, "targets must be one value per embedding", field=field, expected=(n,), found=array.shape
        )
    if numeric:
        if array.dtype.kind not in "fiub":
            raise DataFormatError(
                where,
                "regression targets must be numeric",
                field=field,
                expected="numbers",
                found=array.dtype,
            )
        array = array.astype(np.float64)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        row = int(np.flatnonzero(~np.isfinite(array))[0])
        raise DataFormatError(
            where,
            f"non-finite target in row {row}",
            field=field,
            expected="finite values",
            found=array[row],
        )
    return array


#: How :func:`check_fields` checks one JSON field: (accepts the value, what is expected).
FieldCheck = tuple[Callable[[Any], bool], str]


def check_fields(file: Path, entry: Mapping[str, Any], checks: Mapping[str, FieldCheck], *, prefix: str = "") -> None:
    """Raise DataFormatError, naming ``file`` and the field, where a field of JSON object ``entry`` fails its check."""
    for key, (accepts, expected) in checks.items():
        if key not in entry or not accepts(entry[key]):
            raise DataFormatError(
                file,
                "entry missing or invalid",
                field=prefix + key,
                expected=expected,
                found=repr(entry[key])[:80] if key in entry else "nothing",
            )


def read_format_json(path: Path, fmt: str, what: str) -> dict[str, Any]:
    """The JSON object in ``path`` whose ``format`` field is ``fmt`` (``what``: the file's kind, for errors)."""
    try:
        value = json.loads(path.read_text())
    except OSError as error:
        raise DataFormatError(path, f"cannot read {what} ({error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataFormatError(path, f"{what} is not valid JSON ({error})") from None
    if not isinstance(value, dict) or value.get("format") != fmt:
        raise DataFormatError(
            path,
            f"not {what}",
            field="format",
            expected=fmt,
            found=value.get("format") if isinstance(value, dict) else type(value).__name__,
        )
    return value
