"""S6: the autoregressive galaxy model at several sizes on the ``small`` universe, with a fixed token budget.

1. Each size (width / depth / heads of :data:`SIZES`) pretrains an AstroPT-style image model - the
   central 32x32 pixels of the 4-band cutouts, 4x4-pixel patches (64 tokens of 64 values) in spiral
   order, next-patch Huber loss - on the train split for the same number of tokens, through the
   training stack (``PretrainModule``, Lightning, bf16 autocast, AdamW with warmup and cosine decay),
   with the same seed and data order.
2. Validation loss: the mean next-token loss over every token of the whole validation split
   (fp32, no augmentation).
3. A saturating power law ``L(N) = L_inf + A (N / 1M)^(-alpha)`` in the parameter count N is fitted
   with ``scipy.optimize.curve_fit`` and plotted (``docs/images/ar-scaling.png``).
4. The S1 probe for each size: kNN redshift R² (k = 64, distance-weighted, standardized embeddings,
   train -> test, labelled galaxies) of the image embeddings (mean of the tokens after the middle block).

Records ``science.s6_scaling_monotone`` (1 if the validation loss falls with each size, else 0) with the
fit, every size's figures, the token budget and the wall time. Run: ``python -m benchmarks.science.scaling``.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from typing import Any

import numpy as np
import torch

from astrofm.objectives import create_objective
from astrofm.training import PretrainModule
from benchmarks.science import common as C
from benchmarks.science.galaxies import knn_r2, present

log = logging.getLogger("benchmarks.science.scaling")

#: Model sizes (name -> width, blocks, heads); parameters are counted on the built models.
SIZES: dict[str, dict[str, int]] = {
    "xs": {"dim": 64, "depth": 2, "heads": 2},
    "s": {"dim": 96, "depth": 3, "heads": 3},
    "m": {"dim": 128, "depth": 4, "heads": 4},
    "l": {"dim": 192, "depth": 6, "heads": 6},
}
IMAGE = {"in_chans": 4, "img_size": 32, "patch_size": 4, "order": "spiral"}
TOKENS_PER_IMAGE = (IMAGE["img_size"] // IMAGE["patch_size"]) ** 2
BATCH = 64
FIGURE = C.REPO / "docs" / "images" / "ar-scaling.png"


def model_config(size: dict[str, int], standardize: bool) -> dict[str, Any]:
    transforms = [{"type": "CenterCrop", "size": IMAGE["img_size"]}, {"type": "ArcsinhScale"},
                  {"type": "RandomFlipRot90"}]
    return {"model_type": "ar", **size, "modalities": {"image": {
        "tokenizer": "image_patches", "config": {**IMAGE, "standardize": standardize}, "transforms": transforms}}}


def data_config() -> dict[str, Any]:
    return {"data": {"split": "splits.json", "batch_size": BATCH, "num_workers": 0, "cache": True,
                     "sources": [{"datasets": {"legacysurvey": {"path": "legacysurvey/dr10_south_21",
                                                                "modalities": ["image"]}}}]}}


@torch.no_grad()
def validation_loss(module: PretrainModule, data: Any) -> float:
    """Mean next-token loss over every predicted token of the validation split (fp32, eval mode)."""
    model = module.model
    model.eval()
    objective = create_objective("autoregressive", model)
    total, count = 0.0, 0.0
    for batch in data.loader("val", batch_size=256, transform=model.transform):
        out = objective(model, batch)
        tokens = float(out.metrics["tokens/image"])
        total += float(out.loss) * tokens
        count += tokens
    return total / count


def power_law(n: np.ndarray, l_inf: float, a: float, alpha: float) -> np.ndarray:
    """Saturating power law in the parameter count ``n`` (in millions)."""
    return l_inf + a * n ** (-alpha)


def fit_power_law(params: np.ndarray, losses: np.ndarray) -> dict[str, float]:
    from scipy.optimize import curve_fit

    n = params / 1e6
    p0 = (0.9 * losses.min(), max(losses.max() - losses.min(), 1e-4), 0.5)
    (l_inf, a, alpha), cov = curve_fit(power_law, n, losses, p0=p0, bounds=([0, 0, 0], [np.inf, np.inf, 5]),
                                       maxfev=20000)
    residual = losses - power_law(n, l_inf, a, alpha)
    errors = np.sqrt(np.clip(np.diag(cov), 0, None)) if np.all(np.isfinite(cov)) else np.full(3, np.nan)
    return {"l_inf": float(l_inf), "a": float(a), "alpha": float(alpha), "l_inf_err": float(errors[0]),
            "a_err": float(errors[1]), "alpha_err": float(errors[2]),
            "rms_residual": float(np.sqrt(np.mean(residual**2)))}


def plot(results: dict[str, dict[str, Any]], fit: dict[str, float], budget: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = np.array([r["parameters"] for r in results.values()])
    losses = np.array([r["val_loss"] for r in results.values()])
    r2 = np.array([r["knn_z_r2"] for r in results.values()])
    grid = np.geomspace(params.min() / 2, params.max() * 4, 200)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    ax.plot(params, losses, "o", color="C0", label="validation loss")
    ax.plot(grid, power_law(grid / 1e6, fit["l_inf"], fit["a"], fit["alpha"]), "-", color="C1",
            label=rf"$L_\infty + A N^{{-\alpha}}$: $L_\infty$={fit['l_inf']:.4f}, $\alpha$={fit['alpha']:.2f}")
    ax.axhline(fit["l_inf"], color="C1", ls=":", lw=1)
    for name, p, loss in zip(results, params, losses):
        ax.annotate(name, (p, loss), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set(xscale="log", xlabel="parameters N", ylabel="validation next-patch Huber loss",
           title=f"AR galaxy model, {budget / 1e6:.1f}M training tokens each")
    ax.legend(fontsize=8)
    bx.plot(params, r2, "s-", color="C2")
    bx.set(xscale="log", xlabel="parameters N", ylabel="kNN redshift R² (test)", title="S1 probe of each size")
    bx.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.savefig(FIGURE, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--samples", type=int, default=48_000, help="training images per size (token budget / 64)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=False,
                        help="per-patch standardization of the tokens (AstroPT's choice)")
    parser.add_argument("--minutes", type=float, default=15.0, help="training time cap per size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="another simulated universe (default: data/sim/small)")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    C.setup(args.threads)
    C.use_root(args.root, args.preset)
    start = time.perf_counter()
    labels = C.truth_labels("galaxies", "legacysurvey_object_id", "z")
    steps = math.ceil(args.samples / BATCH)
    budget = steps * BATCH * TOKENS_PER_IMAGE
    results: dict[str, dict[str, Any]] = {}
    for name in args.sizes:
        data = C.data_module(data_config())
        torch.manual_seed(args.seed)  # the same initialization whatever ran before in this process
        module = PretrainModule(model_config(SIZES[name], args.standardize), objective={"name": "autoregressive"},
                                optimizer={"lr": args.lr, "weight_decay": 0.1, "warmup_steps": max(20, steps // 20),
                                           "min_lr_ratio": 0.1})
        info = C.fit(module, data, name=f"s6-{name}", max_steps=steps, max_minutes=args.minutes, seed=args.seed)
        model = module.model
        val = validation_loss(module, data)
        train_ids, train_z = C.embed(model, data, "train", ["image"])
        test_ids, test_z = C.embed(model, data, "test", ["image"])
        r2 = knn_r2(present(train_ids, train_z["image"]), present(test_ids, test_z["image"]), labels)
        results[name] = {"parameters": model.num_parameters(), **SIZES[name], "val_loss": val, "knn_z_r2": r2,
                         "tokens_seen": info["steps"] * BATCH * TOKENS_PER_IMAGE, **info}
        log.info("%s: %d parameters, val loss %.5f, kNN z R² %.3f (%s)", name, model.num_parameters(), val, r2, info)
        del data, module, model
    order = sorted(results, key=lambda k: results[k]["parameters"])
    results = {k: results[k] for k in order}
    losses = np.array([r["val_loss"] for r in results.values()])
    params = np.array([r["parameters"] for r in results.values()], dtype=np.float64)
    monotone = bool(np.all(np.diff(losses) < 0))
    full_budget = all(r["steps"] == steps for r in results.values())
    fit = fit_power_law(params, losses) if len(results) >= 3 else {}
    if fit:
        plot(results, fit, budget)
    wall = time.perf_counter() - start
    summary = {"results": results, "fit": fit, "monotone": monotone, "budget_tokens": budget, "wall_s": wall,
               "full_budget": full_budget}
    C.save_json(C.work_file("s6/results.json", args.no_record), summary)
    log.info("S6: monotone %s, fit %s, wall %.0f s", monotone, fit, wall)
    if args.no_record:
        return
    from benchmarks.results import record

    record("science.s6_scaling_monotone", float(monotone), target="== 1", unit="bool",
           baseline="validation loss of the next smaller model, same token budget, data order and seed",
           notes=(f"AR image model (32x32 central pixels, 4-px patches, 64 tokens, spiral, standardize="
                  f"{args.standardize}) at {len(results)} sizes, {budget / 1e6:.2f}M training tokens each "
                  f"({'reached by every size' if full_budget else 'NOT reached by every size: time cap'}); "
                  "val losses " + ", ".join(f"{k} {r['parameters'] / 1e6:.2f}M: {r['val_loss']:.5f}"
                                            for k, r in results.items())
                  + f"; fit L = {fit.get('l_inf', math.nan):.4f} + {fit.get('a', math.nan):.4f} (N/1M)^-"
                    f"{fit.get('alpha', math.nan):.3f}; kNN z R² "
                  + ", ".join(f"{k} {r['knn_z_r2']:.3f}" for k, r in results.items())
                  + f"; figure {FIGURE.relative_to(C.REPO)}"),
           power_law=fit, sizes=results, budget_tokens=budget, seed=args.seed, lr=args.lr, threads=args.threads,
           wall_s=round(wall, 1))


if __name__ == "__main__":
    main()
