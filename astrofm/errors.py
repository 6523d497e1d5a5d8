"""Exceptions raised by astrofm. Every error names what it was looking at."""

from __future__ import annotations

from pathlib import Path


class AstrofmError(Exception):
    """Base class of every error astrofm raises on purpose."""


class DataFormatError(AstrofmError, ValueError):
    """A file or dataset does not follow the format astrofm expects.

    The message names the file, the object and the field, and what was
    expected against what was found.
    """

    def __init__(
        self,
        file: str | Path | None,
        problem: str,
        *,
        object_id: str | None = None,
        field: str | None = None,
        expected: object = None,
        found: object = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.object_id = object_id
        self.field = field
        self.expected = expected
        self.found = found
        self.problem = problem
        parts = [self.file or "<in memory>"]
        if object_id is not None:
            parts.append(f"object_id={object_id}")
        if field is not None:
            parts.append(f"field '{field}'")
        message = ": ".join(parts) + f": {problem}"
        given = [f"{name} {value}" for name, value in (("expected", expected), ("found", found)) if value is not None]
        if given:
            message += f" ({', '.join(given)})"
        super().__init__(message)


class ConfigError(AstrofmError, ValueError):
    """An option or configuration value is invalid."""
