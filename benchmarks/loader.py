"""Loader benchmark: streaming samples/s against raw h5py and the per-sample ``datasets`` path; RSS growth.

Figures (ids from the targets table):

- ``loader.vs_raw_h5py``: StreamingLoader (2 persistent workers, five
  shuffled epochs after a warm-up epoch) ÷ a raw contiguous h5py read of
  the same columns of the same shards (single process, warmed up too), the
  two measured in alternation (a raw pass next to each epoch); other
  loader variants and a cold single epoch with fresh workers are recorded
  beside it;
- ``loader.vs_datasets_generator``: StreamingLoader (2 workers) ÷ a
  ``datasets.IterableDataset.from_generator`` that yields one example per
  object the way MMU's loading scripts do (open shard, searchsorted the id,
  read each column's row);
- ``loader.rss_growth_mb``: RSS growth while streaming a dataset 10x the
  shuffle buffer, measured after the buffer has filled.

The rates are measured on the dataset as the training DataModule opens it
(``keep_maps=True``: shard files stay mapped across epochs); the default
(maps released with their blocks) is measured beside them, and the RSS the
other way round: default first, kept maps beside it (their pages count in
RSS). Without a transform the stream gathers batches column by column; the
per-object path that runs when a transform is given (here an identity
transform) is measured beside it.

The data is synthetic MMU-format galaxies (4-band 64x64 images and DESI-grid
spectra) written with astrofm's writer. Run: ``python -m benchmarks.loader``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from astrofm.data.dataset import MMUDataset
from astrofm.data.shard import write_shard
from astrofm.data.streaming import StreamingDataset, StreamingLoader
from benchmarks.memory import RSSTracker, in_fresh_process
from benchmarks.results import record

log = logging.getLogger("benchmarks.loader")


def write_synthetic(root: Path, n: int, *, image_size: int = 64, spec_len: int = 7781, per_shard: int = 1000,
                    seed: int = 0) -> Path:
    """Galaxy shards with images and spectra; each shard sits in one healpix pixel."""
    from astrofm.data.layout import healpix_index, shard_path

    rng = np.random.default_rng(seed)
    for k, start in enumerate(range(0, n, per_shard)):
        m = min(per_shard, n - start)
        ra = 10 + 0.5 * k + rng.uniform(0, 0.01, m)
        dec = rng.uniform(0, 0.01, m)
        pixel = int(healpix_index(ra[:1], dec[:1])[0])
        ra, dec = np.full(m, ra[0]) + rng.uniform(0, 1e-4, m), np.full(m, dec[0]) + rng.uniform(0, 1e-4, m)
        cols = {
            "object_id": np.arange(start, start + m, dtype=np.int64) + 39627000000000000,
            "ra": ra, "dec": dec,
            "image_array": rng.normal(size=(m, 4, image_size, image_size)).astype(np.float32),
            "image_ivar": rng.uniform(1, 2, size=(m, 4, image_size, image_size)).astype(np.float32),
            "image_mask": np.ones((m, image_size, image_size), bool),
            "image_band": np.array([[b"des-g", b"des-r", b"des-i", b"des-z"]] * m),
            "image_psf_fwhm": np.ones((m, 4), np.float32), "image_scale": np.full((m, 4), 0.262, np.float32),
            "spectrum_flux": rng.normal(size=(m, spec_len)).astype(np.float32),
            "spectrum_ivar": np.ones((m, spec_len), np.float32),
            "spectrum_lambda": np.broadcast_to(np.linspace(3600, 9824, spec_len, dtype=np.float32), (m, spec_len)),
            "spectrum_mask": np.zeros((m, spec_len), bool),
            "spectrum_lsf_sigma": np.ones((m, spec_len), np.float32),
            "Z": rng.uniform(0, 1, m).astype(np.float32),
        }
        write_shard(shard_path(root, pixel, k + 1, 999), cols)
    return root


def raw_h5py_pass(dataset: MMUDataset, block: int = 256) -> tuple[int, float]:
    """(samples, seconds) of one contiguous h5py read of the columns the loader reads (one process)."""
    columns = dataset._columns_for(dataset.shards[0])
    start = time.perf_counter()
    n = 0
    for shard in dataset.shards:
        with h5py.File(shard.path, "r") as f:
            for s in range(0, shard.n_objects, block):
                for c in columns:
                    f[c][s: s + block]
                n += min(block, shard.n_objects - s)
    return n, time.perf_counter() - start


def _unchanged(sample: dict, rng: np.random.Generator | None) -> dict:
    return sample


def streaming_loader(dataset: MMUDataset, workers: int, *, batch_size: int = 64, buffer_size: int = 1024,
                     persistent: bool = False, per_object: bool = False) -> StreamingLoader:
    """The StreamingLoader measured here; ``per_object``: through an identity transform (one dict per object)."""
    stream = StreamingDataset(dataset, batch_size=batch_size, buffer_size=buffer_size, block_size=256, seed=0,
                              transform=_unchanged if per_object else None)
    return StreamingLoader(stream, num_workers=workers, persistent_workers=persistent and workers > 0)


def epoch_seconds(loader: StreamingLoader) -> tuple[int, float]:
    """(samples, seconds) of one epoch of ``loader``."""
    start = time.perf_counter()
    n = sum(len(batch) for batch in loader)
    return n, time.perf_counter() - start


def loader_rate(dataset: MMUDataset, workers: int, *, epochs: int = 1, warmup: bool = True, persistent: bool = False,
                per_object: bool = False) -> float:
    """Samples/s of the StreamingLoader over ``epochs`` shuffled epochs, after one unmeasured epoch if ``warmup``."""
    loader = streaming_loader(dataset, workers, persistent=persistent, per_object=per_object)
    if warmup:
        epoch_seconds(loader)
    n, seconds = map(sum, zip(*(epoch_seconds(loader) for _ in range(epochs))))
    return n / seconds


def paired_rates(dataset: MMUDataset, workers: int, rounds: int = 5) -> tuple[float, float]:
    """(raw h5py samples/s, loader samples/s) measured in alternation: a raw pass next to each loader epoch (persistent
    workers, after a warm-up epoch), so that the machine's drift between runs (tens of % in the raw read on shared
    VMs) moves both alike."""
    loader = streaming_loader(dataset, workers, persistent=True)
    epoch_seconds(loader)
    raw_n, raw_seconds, n, seconds = np.sum([[*raw_h5py_pass(dataset), *epoch_seconds(loader)]
                                             for _ in range(rounds)], axis=0)
    return float(raw_n / raw_seconds), float(n / seconds)


def _mmu_style_examples(files: list[str], limit: int):
    """One example per object, as MMU's HF loading scripts yield them."""
    count = 0
    for file in files:
        with h5py.File(file, "r") as data:
            ids = data["object_id"][:]
            order = np.argsort(ids)
            for key in ids:
                i = order[np.searchsorted(ids[order], key)]
                yield {
                    "object_id": str(key),
                    "image": {"band": [b.decode() for b in data["image_band"][i]], "flux": data["image_array"][i],
                              "ivar": data["image_ivar"][i],
                              "mask": np.broadcast_to(data["image_mask"][i], data["image_array"][i].shape),
                              "psf_fwhm": data["image_psf_fwhm"][i], "scale": data["image_scale"][i]},
                    "spectrum": {"flux": data["spectrum_flux"][i], "ivar": data["spectrum_ivar"][i],
                                 "lsf_sigma": data["spectrum_lsf_sigma"][i], "lambda": data["spectrum_lambda"][i],
                                 "mask": data["spectrum_mask"][i]},
                    "Z": float(data["Z"][i]),
                }
                count += 1
                if count >= limit:
                    return


def datasets_generator_rate(dataset: MMUDataset, limit: int = 400) -> float:
    """Samples/s of ``datasets.IterableDataset.from_generator`` over per-object reads (numpy format)."""
    import datasets

    from astrofm.data.hf import hf_features

    features = hf_features(MMUDataset(dataset.path, target_columns=["Z"]))
    features.pop("ra")
    features.pop("dec")
    stream = datasets.IterableDataset.from_generator(
        _mmu_style_examples, features=features,
        gen_kwargs={"files": [str(s.path) for s in dataset.shards], "limit": limit},
    ).with_format("numpy")
    start = time.perf_counter()
    n = sum(1 for _ in stream)
    return n / (time.perf_counter() - start)


def rss_growth(path: str, buffer_size: int, keep_maps: bool = False) -> tuple[float, float, float, float]:
    """Over one streamed epoch in a fresh process, in MB: RSS growth after warm-up and from start, growth after
    warm-up of the memory the process owns (RSS less mapped file pages), file pages mapped at peak."""
    return tuple(in_fresh_process("benchmarks.loader:_rss_growth", path, buffer_size,  # type: ignore[return-value]
                                  keep_maps))


def _rss_growth(path: str, buffer_size: int, keep_maps: bool) -> tuple[float, float, float, float]:
    rss = RSSTracker()
    stream = StreamingDataset(MMUDataset(path, keep_maps=keep_maps), batch_size=32, buffer_size=buffer_size,
                              block_size=128, seed=0)
    seen = 0
    for batch in StreamingLoader(stream, num_workers=0):
        seen += len(batch)
        rss.sample(warmed_up=seen >= 2 * buffer_size)
    return (*rss.growth_mb(), rss.owned_growth_mb(), rss.mapped_file_mb())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6000, help="objects in the synthetic dataset")
    parser.add_argument("--root", type=Path, default=None, help="where to write the data (default: a temp dir)")
    parser.add_argument("--buffer", type=int, default=256, help="shuffle buffer for the RSS measurement")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp)
        data = root / "bench-galaxies"
        if not data.exists():
            write_synthetic(data, args.n)
        dataset = MMUDataset(data, keep_maps=True)  # as the training DataModule opens it
        raw_h5py_pass(dataset)  # warm the page cache so every reader sees the same storage
        raw, rate2 = paired_rates(dataset, 2)
        rate0 = loader_rate(dataset, 0, epochs=3)
        per_object2 = loader_rate(dataset, 2, epochs=3, persistent=True, per_object=True)
        released2 = loader_rate(MMUDataset(data), 2, epochs=3, persistent=True)
        cold0 = loader_rate(dataset, 0, warmup=False)
        cold2 = loader_rate(dataset, 2, warmup=False)
        hf = datasets_generator_rate(dataset)
        growth, total, owned, mapped = rss_growth(str(data), args.buffer)
        kept_growth, _, kept_owned, kept_mapped = rss_growth(str(data), args.buffer, keep_maps=True)
    log.info("raw h5py %.0f/s, loader 0 workers %.0f/s, 2 workers %.0f/s (per object: %.0f/s; maps released with "
             "their blocks: %.0f/s; cold single epoch: %.0f/s, %.0f/s), datasets generator %.0f/s", raw, rate0, rate2,
             per_object2, released2, cold0, cold2, hf)
    detail = {"loader_0_workers_per_s": round(rate0, 1), "loader_2_workers_per_s": round(rate2, 1),
              "per_object_2_workers_per_s": round(per_object2, 1), "released_maps_2_workers_per_s": round(released2, 1),
              "cold_epoch_0_workers_per_s": round(cold0, 1), "cold_epoch_2_workers_per_s": round(cold2, 1),
              "raw_h5py_per_s": round(raw, 1), "datasets_generator_per_s": round(hf, 1), "n_objects": len(dataset)}
    sample = "4x64x64 image + 7781-px spectrum per object"
    record("loader.vs_raw_h5py", rate2 / raw, target=">= 0.8", unit="ratio",
           baseline="raw contiguous h5py read of the same columns and shards, same run (1 process)",
           notes=f"{sample}; StreamingLoader shuffled (1024-row buffer), batch 64, no transform (batches gathered "
                 f"column by column), 2 persistent workers, 5 epochs after a warm-up epoch, each next to a raw pass "
                 f"(the raw read is warmed too), shard files kept mapped as in training; 0 workers: "
                 f"{rate0 / raw:.2f}x; through a per-sample (identity) transform, 2 workers: {per_object2 / raw:.2f}x; "
                 f"with maps released with their blocks (the default outside training), 2 workers: "
                 f"{released2 / raw:.2f}x; a cold single epoch with fresh workers: {cold2 / raw:.2f}x",
           **detail)
    record("loader.vs_datasets_generator", rate2 / hf, target=">= 10", unit="ratio",
           baseline="datasets.IterableDataset.from_generator, per-object MMU-script-style reads, numpy format",
           notes=sample, **detail)
    record("loader.rss_growth_mb", growth, target="<= 100", unit="MB",
           baseline="RSS after the shuffle buffer has filled",
           notes=f"{len(dataset)} objects = {len(dataset) / args.buffer:.0f}x the shuffle buffer ({args.buffer}); "
                 f"default dataset (block maps released with their samples); growth from process start incl. the "
                 f"filled buffer: {total:.0f} MB; with shard files kept mapped (training): RSS growth "
                 f"{kept_growth:.0f} MB, of which mapped file pages (page cache, bounded by ASTROFM_MAP_BUDGET_MB) "
                 f"{kept_mapped:.0f} MB, owned memory {kept_owned:.0f} MB",
           rss_growth_from_start_mb=round(total, 1), owned_growth_mb=round(owned, 1), mapped_file_mb=round(mapped, 1),
           kept_maps_rss_growth_mb=round(kept_growth, 1), kept_maps_owned_growth_mb=round(kept_owned, 1),
           kept_maps_mapped_file_mb=round(kept_mapped, 1))


if __name__ == "__main__":
    main()
