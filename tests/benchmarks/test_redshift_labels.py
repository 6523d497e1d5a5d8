"""S1 and S2 score redshift on the galaxies a survey has labels for: normal, with an unflagged DESI-like fit."""

from __future__ import annotations

import numpy as np
import pytest

from astrofm.sim import load_anomalies, load_truth
from astrofm.sim.validation import read_dataset
from benchmarks.science import common as C


def test_redshift_labels_are_the_true_z_of_normal_galaxies_with_an_unflagged_redshift(tiny, monkeypatch) -> None:
    monkeypatch.setattr(C, "DATA_ROOT", tiny.root)
    secure, every = C.redshift_labels(), C.redshift_labels(secure_only=False)
    truth = load_truth(tiny.root, "galaxies", ["truth_id", "legacysurvey_object_id", "desi_object_id", "z"])
    desi = read_dataset(tiny.datasets["desi"], ["object_id", "ZWARN"])
    zwarn = dict(zip(desi["object_id"].tolist(), desi["ZWARN"].tolist()))
    anomalies = load_anomalies(tiny.root)
    anomalous = set(anomalies["truth_id"][anomalies["is_anomaly"]].tolist())
    expected, normal = {}, set()
    for truth_id, name, desi_id, z in zip(truth["truth_id"], truth["legacysurvey_object_id"],
                                          truth["desi_object_id"], truth["z"]):
        if int(truth_id) in anomalous:
            continue
        normal.add(name.decode())
        if zwarn.get(int(desi_id), -1) == 0:
            expected[name.decode()] = float(z)
    assert secure == pytest.approx(expected)
    assert set(every) == normal
    assert 0.3 < len(secure) / len(every) < 0.8  # galaxies without a spectrum or with a flagged fit are left out
    assert np.isfinite(list(secure.values())).all()
