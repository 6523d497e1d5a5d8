"""Training-side data plumbing: splits, subsets, concatenated sources, label joins, epoch lengths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from astrofm.data.dataset import MMUDataset
from astrofm.errors import ConfigError, DataFormatError
from astrofm.training import AstroFMDataModule, ConcatSource, SubsetSource, hash_split
from astrofm.training.sources import split_ids


def test_hash_split_is_deterministic_and_disjoint() -> None:
    ids = np.array([f"obj{i}" for i in range(2000)])
    a, b = hash_split(ids, seed=3), hash_split(ids, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert sum(len(v) for v in a.values()) == 2000 and not set(a["train"]) & set(a["test"])
    assert abs(len(a["train"]) / 2000 - 0.8) < 0.05


def test_split_manifests_in_both_layouts(tmp_path: Path) -> None:
    ids = np.array(["a", "b", "c", "d"])
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"train": ["a", "c"], "val": ["b"], "test": ["d", "zz"]}))
    assert {k: v.tolist() for k, v in split_ids(plain, ids).items()} == {"train": ["a", "c"], "val": ["b"],
                                                                           "test": ["d"]}
    sim = tmp_path / "sim.json"
    sim.write_text(json.dumps({"populations": {
        "galaxies": {"surveys": ["ls", "desi"], "train": {"ls": ["a"], "desi": [7]}, "val": {"ls": ["b"]},
                     "test": {"ls": []}},
        "stars": {"surveys": ["asassn"], "train": {"asassn": []}, "val": {"asassn": []},
                  "test": {"asassn": ["c"]}}}}))
    got = split_ids(sim, np.array(["a", "b", "c", "7"]))
    assert got["train"].tolist() == ["a", "7"] and got["val"].tolist() == ["b"] and got["test"].tolist() == ["c"]
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(DataFormatError, match="no objects"):
        split_ids(empty, ids)


def test_a_manifest_matching_no_train_object_is_refused_and_empty_eval_splits_warned(
        synthetic_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ids = MMUDataset(synthetic_root / "gal").catalog.object_id.tolist()  # "1000", "1001", ...
    (tmp_path / "padded.json").write_text(json.dumps({"train": [f"{i:06d}" for i in range(1000, 1150)],
                                                      "val": ids[150:175], "test": ids[175:]}))
    module = AstroFMDataModule(str(tmp_path), [{"datasets": {"gal": {"path": str(synthetic_root / "gal")}}}],
                               split="padded.json")
    with pytest.raises(ConfigError, match=r"padded\.json.*'train'.*'001000'.*data has 200 \(e\.g\. \['1"):
        module.setup("fit")
    module.setup("test")  # testing a checkpoint needs no train objects
    assert len(module.splits["train"]) == 0 and len(module.splits["test"]) == 25
    (tmp_path / "no-val.json").write_text(json.dumps({"train": ids[:150], "val": ["nope"], "test": ids[150:]}))
    module = AstroFMDataModule(str(tmp_path), [{"datasets": {"gal": {"path": str(synthetic_root / "gal")}}}],
                               split="no-val.json")
    with caplog.at_level("WARNING"):
        module.setup()
    assert len(module.splits["train"]) == 150 and len(module.splits["val"]) == 0
    assert "no-val.json" in caplog.text and "'val'" in caplog.text and "'nope'" in caplog.text


def test_a_named_manifest_that_does_not_exist_is_refused_not_replaced_by_a_hash_split(
        synthetic_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ids = MMUDataset(synthetic_root / "gal").catalog.object_id.tolist()
    sources = [{"datasets": {"gal": {"path": str(synthetic_root / "gal")}}}]
    # a relative path is read from the root, not from the working folder (a subset written beside a
    # benchmark's work folder once silently trained on the whole hash split)
    (tmp_path / "subset.json").write_text(json.dumps({"train": ids[:20], "val": ids[20:30], "test": ids[30:]}))
    with pytest.raises(ConfigError, match=r"other-root.*subset\.json.*does not exist.*null"):
        AstroFMDataModule(str(tmp_path / "other-root"), sources, split="subset.json").setup()
    absolute = AstroFMDataModule(str(tmp_path / "other-root"), sources, split=str(tmp_path / "subset.json"))
    absolute.setup()
    assert absolute.splits["train"].object_ids.tolist() == ids[:20]
    # only the simulator's default manifest name may be absent (real MMU roots have none)
    default = AstroFMDataModule(str(tmp_path / "other-root"), sources)
    with caplog.at_level("WARNING"):
        default.setup()
    assert "splitting by object-id hash" in caplog.text and sum(len(v) for v in default.splits.values()) == 200


def test_the_hash_split_follows_split_seed_not_the_stream_seed(synthetic_root: Path) -> None:
    def splits(**options: int) -> dict[str, set[str]]:
        module = AstroFMDataModule(str(synthetic_root), [{"datasets": {"gal": {"path": "gal"}}}], split=None,
                                   **options)
        module.setup()
        return {k: set(v.object_ids.tolist()) for k, v in module.splits.items()}

    base = splits()
    assert splits(seed=7) == base
    moved = splits(split_seed=7)
    assert moved != base and set.union(*moved.values()) == set.union(*base.values())


def test_subset_and_concat_sources_read_the_chosen_objects(synthetic_root: Path) -> None:
    data = MMUDataset(synthetic_root / "gal")
    ids = data.catalog.object_id
    chosen = ids[::7]
    subset = SubsetSource(data, chosen)
    assert len(subset) == len(chosen) and set(subset.object_ids) == set(chosen)
    read = [s["object_id"] for ref in subset.blocks(5) for s in subset.iter_block(ref)]
    assert sorted(read) == sorted(chosen.tolist())
    assert {s["object_id"] for s in subset.spread_samples(4)} <= set(chosen)
    both = ConcatSource([subset, SubsetSource(data, ids[1::7])])
    read = [s["object_id"] for ref in both.blocks(8) for s in both.iter_block(ref)]
    assert sorted(read) == sorted([*chosen.tolist(), *ids[1::7].tolist()])
    assert len(SubsetSource(both, ids[1::7][:3])) == 3


def test_labels_join_from_a_table_and_epoch_length_is_exact(synthetic_root: Path, tmp_path: Path) -> None:
    import h5py

    data = MMUDataset(synthetic_root / "gal")
    ids = data.catalog.object_id
    with h5py.File(tmp_path / "labels.hdf5", "w") as f:
        f["key"] = np.char.encode(ids[:150].astype(str))
        f["kind"] = np.char.encode(np.where(np.arange(150) % 2 == 0, "even", "odd"))
    module = AstroFMDataModule(str(synthetic_root), [{"datasets": {"gal": {"path": "gal"}}}], split=None,
                               batch_size=16, drop_last=False,
                               labels=[{"path": str(tmp_path / "labels.hdf5"), "key": "key", "columns": ["kind"]}])
    loader = module.train_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader) == -(-len(module.splits["train"]) // 16)
    index = {oid: i for i, oid in enumerate(ids.tolist())}
    for batch in batches:
        for oid, kind in zip(batch.object_id, batch.targets["kind"]):
            expected = None if index[oid] >= 150 else ("even" if index[oid] % 2 == 0 else "odd")
            assert kind == expected
