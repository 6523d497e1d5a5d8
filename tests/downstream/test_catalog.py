"""Catalog reading: any id column becomes the store's object_id key."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from astrofm.downstream.catalog import read_catalog
from astrofm.errors import DataFormatError


def test_id_column_becomes_object_id(tmp_path):
    path = tmp_path / "truth.ecsv"
    Table({"truth_id": [0, 1, 2], "desi_object_id": np.array([39627000000000000, -1, 39627000000000002]),
           "z": [0.1, 0.2, 0.3]}).write(path)
    table = read_catalog(path, id_column="desi_object_id")
    assert list(table["object_id"]) == ["39627000000000000", "-1", "39627000000000002"]
    assert "desi_object_id" not in table.colnames
    with pytest.raises(DataFormatError, match="no object_id column"):
        read_catalog(path)
    with pytest.raises(DataFormatError, match="no nope column"):
        read_catalog(path, id_column="nope")
