"""ANN benchmark: recall@10 and speed-up over exact search on 1M × 256 clustered synthetic embeddings.

The base is written to an :class:`astrofm.downstream.store.EmbeddingStore` (streamed appends) and
indexed from its memory map, as ``astrofm search`` does. Exact search (astrofm's batched matmul, and
faiss ``IndexFlatIP`` for reference) gives the ground truth and the baseline queries/s, in the same
run with the same thread count. Each ANN kind is built once and its search parameter swept; the
fastest setting with recall@10 ≥ 0.95 is recorded (else the most accurate one).

Data: ``--clusters`` Gaussian clusters around random unit-norm centres, each spread over its own
random 16-dimensional subspace (σ = 0.25 per latent axis, basis vectors of norm ≈ 1) plus isotropic
noise of total norm ≈ 0.1, then L2-normalized; the queries are new draws from the same clusters.
Cosine metric.

    python -m benchmarks.ann              # 1M × 256, records ann.recall_at_10 and ann.speedup_vs_exact
    python -m benchmarks.ann --n 100000 --no-record   # a quick trial
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.downstream.ann import AnnIndex, choose_params
from astrofm.downstream.metrics import recall_at_k
from astrofm.downstream.search import exact_search
from astrofm.downstream.store import EmbeddingStore

log = logging.getLogger("benchmarks.ann")

K = 10
TARGET_RECALL = 0.95
_LATENT = 16
_LATENT_SIGMA = 0.25
_NOISE = 0.1
_SWEEPS: dict[str, list[dict[str, Any]]] = {
    "hnsw": [{"ef_search": ef} for ef in (16, 24, 32, 48, 64, 96, 128, 192, 256)],
    "ivfpq": [{"nprobe": p, "refine_factor": r} for p in (8, 16, 32, 64) for r in (4, 8, 16)],
}


def clustered(n: int, dim: int, clusters: int, seed: int, *, draws: int, chunk: int = 100_000):
    """Yield float32 unit vectors in chunks from ``clusters`` low-rank Gaussian clusters.

    The clusters depend on ``seed`` only; ``draws`` seeds the points (queries use another one).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=dim**-0.5, size=(clusters, dim)).astype(np.float32)
    bases = rng.normal(scale=dim**-0.5, size=(clusters, _LATENT, dim)).astype(np.float32)
    draw = np.random.default_rng(draws)
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        label = draw.integers(0, clusters, m)
        latent = draw.normal(scale=_LATENT_SIGMA, size=(m, _LATENT)).astype(np.float32)
        x = centres[label] + np.einsum("nl,nld->nd", latent, bases[label])
        x += draw.normal(scale=_NOISE * dim**-0.5, size=(m, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield x


def timed(fn: Callable[[], Any], repeat: int) -> tuple[Any, float]:
    """(result, median wall seconds) of ``repeat`` calls."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--kinds", nargs="+", default=["hnsw", "ivfpq"], choices=sorted(_SWEEPS))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions of each search (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="where the store is written (default: a temp folder)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not write results.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        store = EmbeddingStore.create(Path(tmp) / "bench.store", model="synthetic-clusters", normalization="l2")
        store.add_modality("synthetic", args.dim, capacity=args.n)
        start = time.perf_counter()
        offset = 0
        for chunk in clustered(args.n, args.dim, args.clusters, args.seed, draws=args.seed + 1):
            store.append("synthetic", np.arange(offset, offset + len(chunk)), chunk)
            offset += len(chunk)
        write_s = time.perf_counter() - start
        log.info("store: %d × %d written in %.1f s", args.n, args.dim, write_s)
        base = store.vectors("synthetic")
        queries = next(
            clustered(args.queries, args.dim, args.clusters, args.seed, draws=args.seed + 2, chunk=args.queries)
        )
        result = run(args, base, queries, store)
        result["store_write_s"] = round(write_s, 2)
        del base
    return result


def run(args: argparse.Namespace, base: np.ndarray, queries: np.ndarray, store: EmbeddingStore) -> dict[str, Any]:
    import faiss

    q = len(queries)
    (_, truth), exact_s = timed(lambda: exact_search(queries, base, K, metric="cosine"), 1)
    exact_qps = q / exact_s
    log.info("exact (astrofm batched matmul): %.0f queries/s", exact_qps)
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(np.ascontiguousarray(base))
    _, flat_s = timed(functools.partial(flat.search, queries, K), 1)
    flat_qps = q / flat_s
    del flat
    log.info("exact (faiss IndexFlatIP): %.0f queries/s", flat_qps)
    baseline_qps = max(exact_qps, flat_qps)
    baseline = "astrofm exact search" if exact_qps >= flat_qps else "faiss IndexFlatIP"

    candidates = []
    for kind in args.kinds:
        before = rss_mb()
        index = AnnIndex.build(base, kind=kind, metric="cosine", seed=args.seed, store=store, modality="synthetic")
        build_rss = rss_mb() - before
        index_mb = index.nbytes() / 2**20
        log.info(
            "%s %s: built in %.1f s, index %.0f MiB, RSS +%.0f MiB",
            kind,
            index.params,
            index.build_seconds,
            index_mb,
            build_rss,
        )
        for setting in _SWEEPS[kind]:
            index.configure(**setting)
            (_, found), seconds = timed(lambda index=index: index.search(queries, K), args.repeat)
            recall = recall_at_k(found, truth)
            entry = {
                "kind": kind,
                "params": dict(index.params),
                "recall": recall,
                "qps": q / seconds,
                "speedup": q / seconds / baseline_qps,
                "build_s": index.build_seconds,
                "index_mb": index_mb,
                "build_rss_mb": build_rss,
            }
            candidates.append(entry)
            log.info(
                "  %-40s recall@10 %.4f  %8.0f q/s  speed-up %.1f×",
                setting,
                recall,
                entry["qps"],
                entry["speedup"],
            )
        del index
    best = _best(candidates)
    summary = {
        "n": args.n,
        "dim": args.dim,
        "queries": q,
        "threads": args.threads,
        "exact_qps": exact_qps,
        "faiss_flat_qps": flat_qps,
        "baseline": baseline,
        "best": best,
        "sweep": candidates,
    }
    log.info("best: %s", best)
    if not args.no_record:
        _record(args, summary)
    return summary


def _best(candidates: list[dict[str, Any]], kind: str | None = None) -> dict[str, Any]:
    """The fastest setting with recall ≥ the target (else the most accurate), of one kind or all."""
    pool = [c for c in candidates if kind is None or c["kind"] == kind]
    good = [c for c in pool if c["recall"] >= TARGET_RECALL]
    return max(good, key=lambda c: c["speedup"]) if good else max(pool, key=lambda c: c["recall"])


def _rounded(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in entry.items()}


def _record(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    from benchmarks.results import record

    best = summary["best"]
    setting = ", ".join(f"{k}={v}" for k, v in best["params"].items() if k != "kind")
    data = (
        f"{args.n:,} × {args.dim} float32 synthetic clustered unit vectors ({args.clusters} clusters, "
        f"16-d latent subspaces σ=0.25 + noise 0.1), {summary['queries']} held-out queries, cosine, "
        f"{args.threads} threads"
    )
    extra = {
        "ann_kind": best["kind"],
        "ann_params": best["params"],
        "ann_qps": round(best["qps"], 1),
        "exact_qps": round(summary["exact_qps"], 1),
        "faiss_flat_qps": round(summary["faiss_flat_qps"], 1),
        "build_s": round(best["build_s"], 1),
        "index_mb": round(best["index_mb"], 1),
        "build_rss_mb": round(best["build_rss_mb"], 1),
        "per_kind": {kind: _rounded(_best(summary["sweep"], kind)) for kind in args.kinds},
        "default_params": {kind: choose_params(kind, args.n, args.dim) for kind in args.kinds},
    }
    notes = (
        f"{best['kind']} ({setting}): build {best['build_s']:.0f} s, index {best['index_mb']:.0f} MiB, "
        f"{best['qps']:.0f} q/s vs exact {summary['exact_qps']:.0f} q/s (astrofm) / "
        f"{summary['faiss_flat_qps']:.0f} q/s (faiss flat). Data: {data}."
    )
    record(
        "ann.recall_at_10",
        best["recall"],
        target=">= 0.95",
        unit="recall@10",
        baseline=f"exact search ({summary['baseline']}), same queries, same run",
        notes=notes,
        **extra,
    )
    record(
        "ann.speedup_vs_exact",
        best["speedup"],
        target=">= 20",
        unit="ratio",
        baseline=f"exact search queries/s ({summary['baseline']}), same threads, same run",
        notes=notes,
        **extra,
    )


if __name__ == "__main__":
    main()
