"""Speed of astrofm's autoregressive model against ``astropt`` 2.0.9's GPT at the same configuration.

The peer model is built with the ``astropt`` package itself (a test/benchmark-only dependency); the
astrofm model is *converted from it* (``astrofm.hub.astropt``), so both have the same layers, width,
heads, patch size, sequence length and weights - the same function, checked before timing (their
fp32 losses must agree). Both see the same 4-band images cut into patches: astropt gets the token
tensors its own dataset code makes (patching is not timed for it), astrofm gets the image batch and
patches it inside the timed step.

- Train step: forward + backward + gradient clipping (1.0) + AdamW step on a fixed batch. astropt
  runs as its training script runs on a CPU (fp32, no autocast: its autocast context is CUDA-only)
  and with its own ``configure_optimizers``; astrofm runs with its training defaults (bf16 autocast,
  ``precision: bf16-mixed`` in the configs, where the device has native bf16, fp32 elsewhere; AdamW from
  ``astrofm.training.optim``). Every precision pairing is measured too (``*_fp32`` / ``*_bf16``).
- Embedding: astropt's ``generate_embeddings`` (mean over tokens after the middle block) against
  ``ARModel.embed`` (the same vectors; astrofm runs only the blocks it needs), over ``--embed-batches``
  batches; the peak memory after 1 batch and after all of them shows memory O(batch), not O(N).

Throughput = samples ÷ the fastest timed step (medians kept beside it), best of ``--rounds`` alternating
rounds (:mod:`benchmarks.rounds`); each variant runs in a fresh process (its own peak memory).
``--device cuda`` times the same on a GPU (bf16 autocast there for both "default" variants, as astropt's
script does on CUDA). Where the device has no native bf16 the bf16 variants are left out unless named with
``--variants`` (emulated bf16 is many times slower than fp32 there, and neither default uses it).
Run: ``python -m benchmarks.ar_speed``.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import resource
import tempfile
import time
import warnings
from contextlib import nullcontext
from typing import Any

import numpy as np

from astrofm.utils.precision import native_bf16
from benchmarks.rounds import best_of_rounds, runnable_variants

log = logging.getLogger("benchmarks.ar_speed")

#: The shared configuration: AstroPT's architecture at a CPU-sized scale (64 tokens per image).
CONFIG = {"channels": 4, "image_size": 64, "patch": 8, "dim": 256, "depth": 6, "heads": 8, "batch": 64}
TRAIN_VARIANTS = ("astropt_fp32", "astropt_bf16", "astrofm_fp32", "astrofm_bf16")
#: astropt as its training script runs on this device.
BASELINE = {"cpu": "astropt_fp32", "cuda": "astropt_bf16"}


def default_variant(device: str) -> str:
    """astrofm with its defaults on ``device``: bf16 autocast where bf16 is native, else fp32."""
    return "astrofm_bf16" if native_bf16(device) else "astrofm_fp32"


def build(config: dict[str, int], device: str) -> tuple[Any, Any, Any]:
    """(astropt GPT, the astrofm ARModel converted from it, astropt's modality registry), in train mode."""
    import torch
    from astropt.model import GPT, GPTConfig, ModalityConfig, ModalityRegistry

    from astrofm.hub.astropt import load_astropt

    tokens = (config["image_size"] // config["patch"]) ** 2
    modalities = [ModalityConfig(name="images", input_size=config["patch"] ** 2 * config["channels"],
                                 pos_input_size=1, patch_size=config["patch"], embed_pos=True)]
    registry = ModalityRegistry(modalities)
    args = {"n_layer": config["depth"], "n_head": config["heads"], "n_embd": config["dim"], "block_size": tokens,
            "n_chan": config["channels"], "dropout": 0.0, "bias": False, "tokeniser": "aim", "modalities": modalities}
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = GPT(GPTConfig(**args), registry, master_process=False)
    with tempfile.TemporaryDirectory() as tmp:
        torch.save({"model": peer.state_dict(), "model_args": args, "modality_registry": registry}, f"{tmp}/ckpt.pt")
        # the peer's inputs below are raw patches (no normalise transform), so ours skips it too
        ours = load_astropt(f"{tmp}/ckpt.pt", image_size=config["image_size"], standardize=False)
    return peer.to(device).train(), ours.to(device).train(), registry


def inputs(config: dict[str, int], registry: Any, n: int, seed: int) -> tuple[Any, Any]:
    """The same images as astropt token tensors ({"images", "images_positions"}) and as an astrofm Batch."""
    import torch
    from astropt.local_datasets import GalaxyImageDataset

    from astrofm.data.batch import collate
    from astrofm.inference import samples_from_arrays

    rng = np.random.default_rng(seed)
    size, channels = config["image_size"], config["channels"]
    images = torch.from_numpy(rng.normal(0, 1, (n, channels, size, size)).astype(np.float32))
    dataset = GalaxyImageDataset(paths={"images": None}, spiral=False, stochastic=False, modality_registry=registry,
                                 transform={})
    tokens = torch.stack([dataset.process_galaxy(image.clone()) for image in images])
    peer = {"images": tokens, "images_positions": torch.arange(tokens.shape[1]).expand(n, -1).contiguous()}
    return peer, collate(samples_from_arrays({"image": {"flux": images}}))


def _autocast(device: str, bf16: bool) -> Any:
    import torch

    return torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext()


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _peak_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_train(variant: str, config: dict[str, int], steps: int, warmup: int, threads: int, device: str
              ) -> dict[str, Any]:
    """Time train steps of one variant in this process."""
    import torch
    from astropt.local_datasets import GalaxyImageDataset

    from astrofm.objectives import create_objective
    from astrofm.training.optim import OptimizerConfig, configure_optimizers, param_groups

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    peer, ours, registry = build(config, device)
    peer_inputs, batch = inputs(config, registry, config["batch"], seed=1)
    bf16 = variant.endswith("bf16")
    if variant.startswith("astropt"):
        split = GalaxyImageDataset.process_modes(peer_inputs, registry, device)
        model = peer
        optimizer = peer.configure_optimizers(0.1, 6e-4, (0.9, 0.95), device)

        def loss_fn() -> Any:
            return model(split["X"], targets=split["Y"])[1]
    else:
        batch = batch.to(device)
        model = ours
        objective = create_objective("autoregressive", ours)
        optimizer = configure_optimizers(param_groups(ours.named_parameters(), 0.1, 6e-4),
                                         OptimizerConfig(lr=6e-4, weight_decay=0.1), 1000)["optimizer"]

        def loss_fn() -> Any:
            return objective(model, batch).loss

    def step() -> float:
        with _autocast(device, bf16):
            loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    first = step()
    for _ in range(warmup - 1):
        step()
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    best, median = min(times), float(np.median(times))
    return {"variant": variant, "samples_per_s": config["batch"] / best,
            "median_samples_per_s": config["batch"] / median, "step_s": best, "peak_mb": _peak_mb(device),
            "first_loss": first, "parameters": sum(p.numel() for p in model.parameters())}


def run_embed(variant: str, config: dict[str, int], n_batches: int, threads: int, device: str) -> dict[str, Any]:
    """Embed ``n_batches`` batches with one variant in this process (the first batch is a warmup)."""
    import torch

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    peer, ours, registry = build(config, device)
    peer.eval()
    ours.eval()
    bf16 = variant.endswith("bf16")
    batches = [inputs(config, registry, config["batch"], seed=10 + i) for i in range(n_batches + 1)]

    def embed(k: int) -> Any:
        peer_inputs, batch = batches[k]
        with torch.no_grad(), _autocast(device, bf16):
            if variant.startswith("astropt"):
                return peer.generate_embeddings({k: v.to(device) for k, v in peer_inputs.items()})["images"]
            return ours.embed(batch.to(device))["image"]

    embed(0)
    after_one = _peak_mb(device)
    _sync(device)
    start = time.perf_counter()
    for k in range(1, n_batches + 1):
        embed(k)
    _sync(device)
    wall = time.perf_counter() - start
    return {"variant": variant, "samples_per_s": n_batches * config["batch"] / wall, "wall_s": wall,
            "peak_mb_after_1_batch": after_one, "peak_mb": _peak_mb(device), "batches": n_batches}


def check_same_function(config: dict[str, int]) -> float:
    """Largest |loss difference| (fp32) and embedding difference between astropt and the converted model."""
    import torch

    from astrofm.objectives import create_objective

    peer, ours, registry = build(config, "cpu")
    peer.eval()
    ours.eval()
    peer_inputs, batch = inputs(config, registry, 8, seed=99)
    from astropt.local_datasets import GalaxyImageDataset

    split = GalaxyImageDataset.process_modes(peer_inputs, registry, "cpu")
    with torch.no_grad():
        theirs = float(peer(split["X"], targets=split["Y"])[1])
        mine = float(create_objective("autoregressive", ours)(ours, batch).loss)
        z_peer = peer.generate_embeddings(peer_inputs)["images"]
        z_ours = ours.embed(batch)["image"]
    return max(abs(theirs - mine), float((z_peer - z_ours).abs().max()))


def _child(queue: Any, kind: str, *args: Any) -> None:
    queue.put(run_train(*args) if kind == "train" else run_embed(*args))


def measure(kind: str, *args: Any) -> dict[str, Any]:
    """Run one variant in a fresh process."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(queue, kind, *args))
    process.start()
    result = queue.get()
    process.join()
    log.info("%-5s %-13s %8.1f samples/s  peak %.0f MB", kind, result["variant"], result["samples_per_s"],
             result["peak_mb"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--embed-batches", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=CONFIG["batch"])
    parser.add_argument("--variants", nargs="*", choices=TRAIN_VARIANTS,
                        help="default: all, less the bf16 ones where the device has no native bf16")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of every variant (best kept)")
    parser.add_argument("--no-record", action="store_true", help="print the figures, do not record them")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    config = {**CONFIG, "batch": args.batch_size}
    start = time.perf_counter()
    gap = check_same_function(config)
    log.info("same function: largest fp32 loss / embedding difference %.2e", gap)
    if gap > 1e-4:
        raise SystemExit(f"astropt and the converted astrofm model disagree by {gap:.2e}; not the same config")
    variants = args.variants or runnable_variants({v: v.endswith("bf16") for v in TRAIN_VARIANTS}, args.device)
    train = best_of_rounds(lambda v: measure("train", v, config, args.steps, args.warmup, args.threads, args.device),
                           variants, args.rounds)
    embed = best_of_rounds(lambda v: measure("embed", v, config, args.embed_batches, args.threads, args.device),
                           variants, args.rounds)
    wall = time.perf_counter() - start
    print(json.dumps({"train": train, "embed": embed}, indent=1))
    baseline, default = BASELINE[args.device], default_variant(args.device)
    if args.no_record or not {baseline, default} <= set(variants):
        return
    from benchmarks.results import record

    precision = "bf16 autocast" if default.endswith("bf16") else "fp32 (no native bf16 here)"

    def ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
        """astrofm ÷ astropt: defaults, then each precision both were run in."""
        pairs = {"default_vs_astropt_default": (default, baseline), "fp32_vs_fp32": ("astrofm_fp32", "astropt_fp32"),
                 "bf16_vs_bf16": ("astrofm_bf16", "astropt_bf16")}
        return {k: results[ours]["samples_per_s"] / results[theirs]["samples_per_s"]
                for k, (ours, theirs) in pairs.items() if ours in results and theirs in results}

    def same_precision(r: dict[str, float]) -> str:
        return ", ".join(f"{p} {r[f'{p}_vs_{p}']:.2f}x" for p in ("fp32", "bf16") if f"{p}_vs_{p}" in r)

    def figures(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
        return {v: {k: (round(x, 2) if isinstance(x, float) else [round(y, 2) for y in x]) for k, x in r.items()
                    if isinstance(x, float) or k.startswith("rounds_")} for v, r in results.items()}

    tokens = (config["image_size"] // config["patch"]) ** 2
    shape = (f"{config['depth']} layers, width {config['dim']}, {config['heads']} heads, {config['patch']}-px patches "
             f"of {config['channels']}x{config['image_size']}x{config['image_size']} images ({tokens} tokens), "
             f"batch {config['batch']}, {train[default]['parameters'] / 1e6:.2f}M parameters (astropt "
             f"{train[baseline]['parameters'] / 1e6:.2f}M: +biases), {args.threads} threads, {args.device}")
    common = {"rounds": args.rounds, "config": config, "wall_s": round(wall, 1), "same_function_max_diff": gap,
              "device": args.device, "threads": args.threads}
    r = ratios(train)
    record("train.ar_step_vs_astropt", r["default_vs_astropt_default"], target=">= 1.5", unit="ratio",
           baseline=f"astropt 2.0.9 GPT ({baseline}: as its training script runs on {args.device}), same config and "
                    "weights, same run",
           notes=(f"{shape}; astrofm default = {precision}, eager, attention 'auto' (the explicit softmax(QK^T)V "
                  "in bf16 on CPU for <= 240 keys, where it beats the fused SDPA kernels; SDPA in fp32); same "
                  f"precision: {same_precision(r)}; variants run: {', '.join(variants)}"),
           ratios={k: round(v, 3) for k, v in r.items()}, variants=figures(train), steps=args.steps, **common)
    r = ratios(embed)
    record("embed.ar_vs_astropt", r["default_vs_astropt_default"], target=">= 2", unit="ratio",
           baseline=f"astropt 2.0.9 generate_embeddings ({baseline}), same model and images, same run",
           notes=(f"{shape}; the same vectors (mean after the middle block); astrofm runs only blocks 0..depth//2; "
                  f"same precision: {same_precision(r)}; headline = "
                  f"astrofm embed under {precision} (as the science benchmarks run it) vs astropt's CPU default "
                  f"(fp32); peak process memory after 1 batch {embed[default]['peak_mb_after_1_batch']:.0f} MB, "
                  f"after {args.embed_batches} batches {embed[default]['peak_mb']:.0f} MB (O(batch), not O(N))"),
           ratios={k: round(v, 3) for k, v in r.items()}, variants=figures(embed), batches=args.embed_batches,
           **common)


if __name__ == "__main__":
    main()

