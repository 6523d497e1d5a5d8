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


def test_csv_ids_that_look_like_numbers_keep_their_text(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("object_id,score\n000021,3\n000008,\n7,1\n")
    table = read_catalog(path)
    assert list(table["object_id"]) == ["000021", "000008", "7"]
    assert list(table["score"].filled(-1)) == [3, -1, 1]  # other columns are still typed by astropy
    path.write_text("desi_id,z\n0042,0.5\n")
    assert list(read_catalog(path, id_column="desi_id")["object_id"]) == ["0042"]
