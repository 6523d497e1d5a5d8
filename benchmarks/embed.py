"""Embedding at scale: RSS stays flat and objects/s while embedding 100k simulated objects into a store.

- ``embed.rss_growth_mb_100k``: peak RSS after warm-up (the first 10% of objects) minus the peak during it, while
  ``astrofm.inference.embed_to_store`` embeds every object of a 100k-object simulated survey, measured
  in a fresh process (RSS sampled every 0.1 s by a thread); objects/s of the same run in the notes. Beside the
  peak, the notes give the trend of the median owned memory (``RSSTracker.owned_trend_mb``), which tells a leak
  from a long batch late in the run.

The data: ``astrofm.sim.simulate(ROOT, "small", seed=3, n_galaxies=0, n_stars=100_000, lamost_fraction=0)``
(ASAS-SN-like light curves), simulated once and reused.

Run: ``python -m benchmarks.embed --root data/sim/stars100k [--model astrofm-sim-small]``
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.memory import RSSTracker, in_fresh_process
from benchmarks.results import record

log = logging.getLogger("benchmarks.embed")

N_STARS = 100_000


def _embed_rss(data: str, model_source: str, store: str, batch_size: int) -> dict[str, float]:
    import torch

    from astrofm.data.dataset import MMUDataset
    from astrofm.hub.pretrained import load_pretrained
    from astrofm.inference import STATE_FILE, embed_to_store

    torch.set_num_threads(2)
    model = load_pretrained(model_source)
    source = MMUDataset(data)
    rss = RSSTracker()
    state = Path(store) / STATE_FILE
    warm_after = len(source) // 10
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            try:
                objects = json.loads(state.read_text()).get("objects", 0)
            except (OSError, ValueError):
                objects = 0
            rss.sample(warmed_up=objects >= warm_after)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    embed_to_store(model, source, store, batch_size=batch_size, progress=False)
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    rss.sample()
    growth, total = rss.growth_mb()
    return {"growth_mb": growth, "total_mb": total, "owned_mb": rss.owned_growth_mb(), "trend_mb": rss.owned_trend_mb(),
            "mapped_mb": rss.mapped_file_mb(), "objects": len(source), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data/sim/stars100k"), help="the 100k-star simulation")
    parser.add_argument("--model", default="astrofm-sim-small", help="pretrained model (name or folder)")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from astrofm.sim import simulate

    universe = simulate(args.root, "small", seed=3, n_galaxies=0, n_stars=N_STARS, lamost_fraction=0.0)
    data = universe.root / "asassn" / "variables"
    with tempfile.TemporaryDirectory() as tmp:
        out = in_fresh_process("benchmarks.embed:_embed_rss", str(data), args.model, str(Path(tmp) / "store"),
                               args.batch_size)
    rate = out["objects"] / out["seconds"]
    log.info("embedded %d objects in %.0f s (%.0f obj/s); RSS growth %.1f MB after warm-up, %.1f MB from start",
             out["objects"], out["seconds"], rate, out["growth_mb"], out["total_mb"])
    record("embed.rss_growth_mb_100k", out["growth_mb"], target="<= 200", unit="MB",
           baseline="peak RSS during the first 10% of objects (batch-shape dependent memory reached there)",
           command=f"python -m benchmarks.embed --root {args.root} --model {args.model}",
           notes=f"{out['objects']} simulated ASAS-SN-like light curves, light-curve encoder of {args.model}, "
                 f"batch {args.batch_size}, 0 workers, 2 threads: {rate:.0f} objects/s; growth from process "
                 f"start incl. model and first batches: {out['total_mb']:.0f} MB; owned memory (RSS less mapped "
                 f"file pages) growth after warm-up {out['owned_mb']:.0f} MB, its median in the last quarter of "
                 f"the run less that in the first {out['trend_mb']:.0f} MB (peaks of long batches aside), file "
                 f"pages mapped at peak {out['mapped_mb']:.0f} MB",
           objects_per_s=round(rate, 1), rss_growth_from_start_mb=round(out["total_mb"], 1),
           owned_growth_mb=round(out["owned_mb"], 1), owned_median_trend_mb=round(out["trend_mb"], 1),
           mapped_file_mb=round(out["mapped_mb"], 1))


if __name__ == "__main__":
    main()
