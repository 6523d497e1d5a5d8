"""Train-step speed of ``galaxy-clip`` against a plain eager fp32 reference of the same architecture.

The architecture is the one in ``configs/galaxy-clip.yaml`` (AstroCLIP-like towers scaled down: width 384,
4 blocks each, 4x64x64 images in 8-px patches, 7781-px DESI-grid spectra in 20-px windows, 512-d
embedding). One train step = contrastive loss forward + backward + AdamW step on a fixed synthetic batch
(transforms applied beforehand, so only the model is timed). Throughput is batch size ÷ the fastest of the
timed steps (robust to other processes on a shared machine; medians are kept beside it), and the best of
``--rounds`` alternating rounds (:mod:`benchmarks.rounds`: the machine's speed drifts between variants). Each
variant runs in a fresh process, which gives its own peak memory (max RSS) and an empty compile cache (a
fresh ``TORCHINDUCTOR_CACHE_DIR``), so that a compiled variant's warm-up steps pay a first run's whole
compile. From those, the notes give what ``torch.compile`` costs once and after how many steps it has paid
that back. Denormals are flushed in every variant (``torch.set_flush_denormal``, as ``astrofm fit`` does on
CPU): without it, tiny Adam states make CPU steps several times slower for every variant alike.

- ``reference``: eager, fp32, manual attention (softmax(QKᵀ/√d)V written out) - the plain baseline;
- ``sdpa_fp32``: eager, fp32, ``F.scaled_dot_product_attention``;
- ``sdpa_bf16``: eager, bf16 autocast, SDPA - galaxy-clip's default settings (``precision: bf16-mixed``) on a CPU
  with native bf16;
- ``manual_bf16``: eager, bf16 autocast, manual attention;
- ``sdpa_fp32_compile`` / ``sdpa_bf16_compile``: the same with ``torch.compile`` of the transformer trunks.

Figure: ``train.clip_step_vs_eager`` = samples/s of galaxy-clip's default settings (``sdpa_bf16`` where the
CPU has native bf16, AVX512-BF16 or AMX; ``sdpa_fp32`` where bf16 is emulated) ÷ the reference; every
variant's samples/s and peak memory are recorded beside it. On a CPU without native bf16 the bf16 variants
are left out unless named with ``--variants`` (emulated bf16 ran galaxy-clip's step 24x slower than fp32 on a
2-core AVX2 CPU: about 50 minutes for them alone). Run: ``python -m benchmarks.train``.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.utils.precision import native_bf16
from benchmarks.rounds import best_of_rounds, runnable_variants

log = logging.getLogger("benchmarks.train")

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "galaxy-clip.yaml"
VARIANTS: dict[str, dict[str, Any]] = {
    "reference": {"attn": "manual", "bf16": False, "compile": False, "foreach": False},
    "sdpa_fp32": {"attn": "sdpa", "bf16": False, "compile": False, "foreach": True},
    "manual_fp32_foreach": {"attn": "manual", "bf16": False, "compile": False, "foreach": True},
    "sdpa_bf16": {"attn": "sdpa", "bf16": True, "compile": False, "foreach": True},
    "manual_bf16": {"attn": "manual", "bf16": True, "compile": False, "foreach": True},
    "sdpa_fp32_compile": {"attn": "sdpa", "bf16": False, "compile": True, "foreach": True},
    "sdpa_bf16_compile": {"attn": "sdpa", "bf16": True, "compile": True, "foreach": True},
}


def default_variant() -> str:
    """galaxy-clip's own settings as ``astrofm fit`` runs them here (configs/galaxy-clip.yaml: precision
    bf16-mixed, compile false; bf16-mixed trains in 32-true on a CPU without native bf16)."""
    return "sdpa_bf16" if native_bf16("cpu") else "sdpa_fp32"


def model_config(attn: str, path: Path = CONFIG) -> dict[str, Any]:
    """The AstroFM config of a LightningCLI YAML, with every encoder's attention implementation set."""
    import yaml

    config = yaml.safe_load(path.read_text())["model"]["init_args"]["astrofm"]
    for spec in config["modalities"].values():
        spec["config"]["attn_impl"] = attn
    return config


def galaxy_samples(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Raw galaxy-like samples: 4x64x64 images [nanomaggies] and 7781-px DESI-grid spectra."""
    rng = np.random.default_rng(seed)
    wave = (3600.0 + 0.8 * np.arange(7781)).astype(np.float32)
    samples = []
    for i in range(n):
        samples.append({
            "object_id": str(i),
            "image": {"flux": rng.normal(0, 0.05, (4, 64, 64)).astype(np.float32),
                      "ivar": np.full((4, 64, 64), 400.0, np.float32), "mask": np.ones((4, 64, 64), bool),
                      "band": ["des-g", "des-r", "des-i", "des-z"]},
            "spectrum": {"flux": rng.normal(1, 0.2, 7781).astype(np.float32), "ivar": np.full(7781, 25, np.float32),
                         "lambda": wave, "mask": rng.uniform(size=7781) < 0.02},
        })
    return samples


def run_variant(name: str, batch_size: int, steps: int, warmup: int, threads: int, flush_denormal: bool = True
                ) -> dict[str, Any]:
    """Time ``steps`` train steps of one variant (in the calling process); returns its figures."""
    import torch

    from astrofm.data.batch import collate
    from astrofm.model import AstroFM
    from astrofm.objectives import create_objective

    torch.set_num_threads(threads)
    torch.set_flush_denormal(flush_denormal)
    torch.manual_seed(0)
    variant = VARIANTS[name]
    model = AstroFM.from_config(model_config(variant["attn"]))
    samples = galaxy_samples(batch_size)
    model.fit_transforms(samples)
    batch = collate([model.transform(s) for s in samples])
    objective = create_objective("contrastive", model)
    if variant["compile"]:
        for encoder in model.encoders.values():
            encoder.trunk.compile(dynamic=True)
    params = list(model.parameters()) + list(objective.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4, foreach=variant["foreach"])
    model.train()

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant["bf16"]):
            loss = objective(model, batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    start = time.perf_counter()
    for _ in range(warmup):
        step()
    warm_s = time.perf_counter() - start
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times, losses = [], []
    for _ in range(steps):
        start = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    best, median = min(times), float(np.median(times))
    return {"variant": name, "samples_per_s": batch_size / best, "median_samples_per_s": batch_size / median,
            "step_s": best, "median_step_s": median,
            "warmup_s": warm_s, "peak_rss_mb": peak, "rss_before_steps_mb": rss_before,
            "parameters": sum(p.numel() for p in model.parameters()), "final_loss": losses[-1],
            "tokens": {"image": (64 // 8) ** 2, "spectrum": int(np.ceil(7781 / 20))}}


def _child(queue: Any, *args: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # read by inductor when it first compiles
        queue.put(run_variant(*args))


def compile_payback(eager: dict[str, Any], compiled: dict[str, Any], warmup: int) -> tuple[float, float | None]:
    """(seconds ``torch.compile`` adds to the ``warmup`` first steps, steps after which the faster compiled
    steps have paid them back; None if compiled steps are not faster)."""
    cost = compiled["warmup_s"] - eager["warmup_s"] - warmup * (compiled["step_s"] - eager["step_s"])
    saving = eager["step_s"] - compiled["step_s"]
    return cost, cost / saving if saving > 0 else None


def measure(name: str, batch_size: int, steps: int, warmup: int, threads: int) -> dict[str, Any]:
    """Run one variant in a fresh process (own peak memory, own compile caches)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(queue, name, batch_size, steps, warmup, threads))
    process.start()
    result = queue.get()
    process.join()
    log.info("%-18s %6.2f samples/s  step %.2f s  peak RSS %.0f MB", name, result["samples_per_s"],
             result["step_s"], result["peak_rss_mb"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="*", choices=list(VARIANTS),
                        help="default: all, less the bf16 ones on a CPU without native bf16")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of every variant (best kept)")
    parser.add_argument("--no-record", action="store_true", help="print the figures, do not record them")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    variants = args.variants or runnable_variants({n: v["bf16"] for n, v in VARIANTS.items()})
    if not args.variants and not native_bf16("cpu"):
        log.info("no native bf16 on this CPU: bf16 variants left out (name them with --variants to run them)")
    start = time.perf_counter()
    results = best_of_rounds(lambda n: measure(n, args.batch_size, args.steps, args.warmup, args.threads), variants,
                             args.rounds)
    wall = time.perf_counter() - start
    print(json.dumps(results, indent=1))
    default = default_variant()
    extra_notes = []
    if {default, f"{default}_compile"} <= set(results):
        cost, steps = compile_payback(results[default], results[f"{default}_compile"], args.warmup)
        paid = f"{steps:.0f} steps of batch {args.batch_size}" if steps is not None else "no number of steps"
        extra_notes.append(f"torch.compile costs {cost:.0f} s once (cold cache) and pays it back after {paid}")
        log.info(extra_notes[-1])
    if args.no_record or "reference" not in results or default not in results:
        return
    from benchmarks.results import record

    ref = results["reference"]["samples_per_s"]
    ratios = {n: round(r["samples_per_s"] / ref, 3) for n, r in results.items()}
    figures = {n: {"samples_per_s": round(r["samples_per_s"], 2),
                   "rounds_samples_per_s": [round(x, 2) for x in r["rounds_samples_per_s"]],
                   "peak_rss_mb": round(r["peak_rss_mb"]), "warmup_s": round(r["warmup_s"], 1),
                   "ratio_vs_reference": ratios[n]} for n, r in results.items()}
    params = results["reference"]["parameters"]
    precision = "bf16 autocast" if default == "sdpa_bf16" else "fp32 (this CPU has no native bf16)"
    left_out = [n for n in VARIANTS if n not in results]
    if left_out:
        extra_notes.insert(0, f"not run: {', '.join(left_out)}")
    record("train.clip_step_vs_eager", ratios[default], target=">= 1.5", unit="ratio",
           baseline="same galaxy-clip architecture, eager fp32, manual attention, same batch, same run",
           notes=(f"galaxy-clip default (eager, SDPA, {precision}) vs plain eager fp32; {params / 1e6:.1f}M "
                  f"params, batch {args.batch_size}, {args.threads} threads, image 64 tokens + spectrum 390 tokens; "
                  "ratios: " + ", ".join(f"{n} {v}" for n, v in ratios.items())
                  + "".join(f"; {note}" for note in extra_notes)),
           variants=figures, wall_s=round(wall, 1), batch_size=args.batch_size, steps=args.steps, rounds=args.rounds)


if __name__ == "__main__":
    main()
