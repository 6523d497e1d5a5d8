"""Truth catalog and split manifest: every latent, anomalies kept apart from labels."""

from __future__ import annotations

import numpy as np
import pytest

from astrofm.sim import load_anomalies, load_splits, load_truth, simulate
from astrofm.sim.anomalies import GALAXY_TYPES, STAR_TYPES
from astrofm.sim.validation import read_dataset

GALAXY_LATENTS = ("z", "log_mstar", "log_ssfr", "morphology", "bulge_fraction", "r_half_arcsec", "inclination_deg",
                  "dust_av")
STAR_LATENTS = ("class", "period", "amplitude_v", "teff", "distance_pc")


def test_truth_has_every_latent_and_no_anomaly_column(tiny):
    galaxies, stars = load_truth(tiny.root, "galaxies"), load_truth(tiny.root, "stars")
    assert set(GALAXY_LATENTS) <= set(galaxies) and set(STAR_LATENTS) <= set(stars)
    for table in (galaxies, stars):
        assert not any("anomal" in name for name in table)
    assert len(galaxies["z"]) == 1000 and len(stars["class"]) == 1000
    assert galaxies["z"].min() >= 0.01 and galaxies["z"].max() <= 0.6
    assert set(np.unique(galaxies["morphology"]).tolist()) == {b"E", b"S0", b"Sp", b"Irr"}
    ids = np.concatenate([galaxies["truth_id"], stars["truth_id"]])
    assert len(np.unique(ids)) == 2000


def test_anomalies_are_rare_and_labelled(tiny):
    anomalies = load_anomalies(tiny.root)
    fraction = anomalies["is_anomaly"].mean()
    assert 0.003 < fraction < 0.025  # ~1% of 2,000 objects
    kinds = set(anomalies["anomaly_type"][anomalies["is_anomaly"]].astype(str))
    assert kinds <= set(GALAXY_TYPES) | set(STAR_TYPES)


def test_splits_partition_objects_and_keep_anomalies_out_of_labels(tiny):
    manifest = load_splits(tiny.root)
    anomalies = load_anomalies(tiny.root)
    flagged = set(anomalies["truth_id"][anomalies["is_anomaly"]].tolist())
    for population, truth in (("galaxies", tiny.truth("galaxies")), ("stars", tiny.truth("stars"))):
        entry = manifest["populations"][population]
        members = [set(entry[s]["truth_id"]) for s in ("train", "val", "test")]
        assert sum(map(len, members)) == len(set().union(*members)) == len(truth["truth_id"])
        assert len(members[0]) / len(truth["truth_id"]) == pytest.approx(0.8, abs=0.05)
        for split in ("train", "val", "test"):
            labelled = set(entry[split]["labelled"])
            assert labelled <= set(entry[split]["truth_id"]) and not labelled & flagged
            assert set(entry[split]["truth_id"]) - labelled <= flagged
    galaxies = manifest["populations"]["galaxies"]
    shard_ids = set(read_dataset(tiny.datasets["desi"], ["object_id"])["object_id"].tolist())
    listed = set().union(*(galaxies[s]["desi"] for s in ("train", "val", "test")))
    assert listed == shard_ids


def test_every_anomaly_type_is_made(tmp_path):
    universe = simulate(tmp_path / "odd", preset="tiny", seed=2, n_galaxies=150, n_stars=90, anomaly_fraction=0.5,
                        progress=False)
    anomalies = universe.anomalies()
    assert set(anomalies["anomaly_type"].astype(str)) - {""} == set(GALAXY_TYPES) | set(STAR_TYPES)
    stars = universe.truth("stars")
    hosts = np.isin(anomalies["anomaly_type"][anomalies["population"] == b"stars"], [b"microlensing", b"flare"])
    assert (stars["class_index"][hosts] == -1).all() and (stars["class_index"][~hosts] >= 0).all()
