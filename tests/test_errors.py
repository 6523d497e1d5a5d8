"""Error messages name the file, the object and the field, and what was expected against what was found."""

from __future__ import annotations

from astrofm.errors import DataFormatError


def test_a_data_format_error_says_only_what_it_knows():
    full = DataFormatError("a.hdf5", "bad shape", object_id="7", field="image_array", expected=(4, 64), found=(3, 64))
    assert str(full) == "a.hdf5: object_id=7: field 'image_array': bad shape (expected (4, 64), found (3, 64))"
    assert str(DataFormatError("b.ckpt", "unreadable", found="EOF")) == "b.ckpt: unreadable (found EOF)"
    assert str(DataFormatError("c.json", "too new", expected="version 1")) == "c.json: too new (expected version 1)"
    assert str(DataFormatError(None, "empty batch")) == "<in memory>: empty batch"
