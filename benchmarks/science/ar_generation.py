"""Generation with an image + spectrum AR model: the rest of a spectrum, and a spectrum from an image.

1. Pretrain a multimodal AR model (image patches then spectrum windows; the architecture of
   ``configs/galaxy-ar-multimodal.yaml`` at CPU size) on the galaxies of the ``small`` universe that
   have both, within a time budget.
2. For test galaxies: generate the spectrum windows after the first ``--prefix`` fraction of them
   (conditioned on the image and that prefix), and the whole spectrum from the image alone, both with
   the KV cache; compare with the observed spectra (mean squared error on good pixels of the
   normalized flux, against the mean train spectrum as a baseline predictor).
3. Plot a few of them (``docs/images/ar-generation.png``).

Run: ``python -m benchmarks.science.ar_generation``.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import numpy as np
import torch

from astrofm.ar import ARModel, generate
from astrofm.training import PretrainModule
from benchmarks.science import common as C

log = logging.getLogger("benchmarks.science.ar_generation")

FIGURE = C.REPO / "docs" / "images" / "ar-generation.png"
WINDOW = 32


def config() -> dict[str, Any]:
    """The model (image 32x32 crop in 4-px patches, spectrum resampled to 2 Å in 32-px windows) and data."""
    model = {"model_type": "ar", "dim": 128, "depth": 4, "heads": 4, "order": ["image", "spectrum"], "modalities": {
        "image": {"tokenizer": "image_patches",
                  "config": {"in_chans": 4, "img_size": 32, "patch_size": 4, "order": "spiral", "standardize": False},
                  "transforms": [{"type": "CenterCrop", "size": 32}, {"type": "ArcsinhScale"}]},
        "spectrum": {"tokenizer": "spectrum_windows", "config": {"window": WINDOW, "position": "wavelength"},
                     "transforms": [{"type": "MaskBadPixels"}, {"type": "Resample", "start": 3600.0, "stop": 9824.0,
                                                                 "step": 2.0}, {"type": "IvarNormalize"}]}}}
    data = {"split": "splits.json", "batch_size": 64, "num_workers": 0, "cache": True, "sources": [{"datasets": {
        "legacysurvey": {"path": "legacysurvey/dr10_south_21", "modalities": ["image"]},
        "desi": {"path": "desi/dr1_main", "modalities": ["spectrum"]}}, "how": "inner"}]}
    return {"model": model, "data": data}


def spectra_errors(model: ARModel, batch: Any, prefix_fraction: float, mean_flux: np.ndarray
                   ) -> dict[str, np.ndarray]:
    """Per-object MSE on good pixels: continuation, from-image, and the mean-spectrum baseline."""
    spectrum = batch["spectrum"]
    tokenizer = model.tokenizer("spectrum")
    length = spectrum.data["flux"].shape[1]
    observed = spectrum.data["flux"].float().numpy()
    good = ~spectrum.data["mask"].bool().numpy()
    n_windows = int(tokenizer.tokenize(spectrum).mask.sum(dim=1).min())
    prefix = int(prefix_fraction * n_windows)
    out = {}
    for name, k in (("continuation", prefix), ("from_image", 0)):
        generated = generate(model, batch, "spectrum", k)
        flux = tokenizer.to_flux(generated.values, length).numpy()
        new = tokenizer.to_flux(generated.generated[..., None].expand_as(generated.values).float(), length).numpy() > 0
        weight = good & new
        out[name] = ((flux - observed) ** 2 * weight).sum(axis=1) / weight.sum(axis=1)
        out[f"{name}_flux"] = flux
        out[f"{name}_baseline"] = ((mean_flux[None] - observed) ** 2 * weight).sum(axis=1) / weight.sum(axis=1)
        if name == "continuation":
            out["prefix_pixels"] = new.argmax(axis=1)  # each object's first generated pixel
    out["observed"], out["good"] = observed, good
    return out


def smooth(values: np.ndarray, good: np.ndarray, width: int = 16) -> np.ndarray:
    """Running mean over good pixels (``width`` pixels), NaN where a window has none."""
    kernel = np.ones(width)
    total = np.convolve(np.where(good, values, 0.0), kernel, mode="same")
    count = np.convolve(good.astype(float), kernel, mode="same")
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def plot(batch: Any, errors: dict[str, np.ndarray], rows: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wave = batch["spectrum"].data["lambda"][0].numpy()
    image = batch["image"].data["flux"].numpy()
    fig, axes = plt.subplots(len(rows), 3, figsize=(15, 2.8 * len(rows)), gridspec_kw={"width_ratios": [1, 4, 4]},
                             constrained_layout=True, squeeze=False)
    for ax_row, i in zip(axes, rows):
        rgb = image[i, [3, 1, 0]].transpose(1, 2, 0)
        ax_row[0].imshow(np.clip((rgb - rgb.min()) / (np.ptp(rgb) + 1e-6), 0, 1), origin="lower")
        ax_row[0].set_axis_off()
        good = errors["good"][i]
        cut = int(errors["prefix_pixels"][i])
        for ax, key, start, colour, title in (
                (ax_row[1], "continuation", cut, "C0", f"continued after {wave[cut]:.0f} Å (image + prefix given)"),
                (ax_row[2], "from_image", 0, "C3", "generated from the image alone")):
            ax.plot(wave[good], errors["observed"][i][good], color="0.8", lw=0.5, label="observed")
            ax.plot(wave, smooth(errors["observed"][i], good), color="k", lw=0.8, label="observed, 16-px mean")
            ax.plot(wave[start:], errors[f"{key}_flux"][i][start:], color=colour, lw=1.0,
                    label=f"generated (MSE {errors[key][i]:.3f}; mean spectrum {errors[f'{key}_baseline'][i]:.3f})")
            if start:
                ax.axvline(wave[start], color=colour, ls=":", lw=0.8)
            low, high = np.nanpercentile(errors["observed"][i][good], [1, 99])
            ax.set(xlabel="wavelength [Å]", ylabel="normalized flux", title=title, ylim=(low - 0.5, high + 0.5))
            ax.legend(fontsize=7, loc="upper right")
    fig.savefig(FIGURE, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--prefix", type=float, default=0.3, help="fraction of the windows given")
    parser.add_argument("--n-test", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None)
    parser.add_argument("--preset", default="small")
    args = parser.parse_args()
    C.setup(args.threads)
    C.use_root(args.root, args.preset)
    start = time.perf_counter()
    spec = config()
    data = C.data_module(spec)
    torch.manual_seed(args.seed)
    module = PretrainModule(spec["model"], objective={"name": "autoregressive"},
                            optimizer={"lr": 1e-3, "weight_decay": 0.1, "warmup_steps": 100, "min_lr_ratio": 0.1})
    info = C.fit(module, data, name="ar-generation", max_steps=args.steps, max_minutes=args.minutes, seed=args.seed)
    model = module.model.eval()
    mean_flux = np.mean([b["spectrum"].data["flux"].float().numpy().mean(axis=0)
                         for b in data.loader("train", batch_size=512, transform=model.transform)], axis=0)
    batch = next(iter(data.loader("test", batch_size=args.n_test, transform=model.transform)))
    errors = spectra_errors(model, batch, args.prefix, mean_flux)
    plot(batch, errors, [0, 1, 2])
    summary = {name: float(np.nanmedian(errors[name])) for name in
               ("continuation", "continuation_baseline", "from_image", "from_image_baseline")}
    summary.update(train=info, wall_s=round(time.perf_counter() - start, 1), n_test=len(batch),
                   figure=str(FIGURE.relative_to(C.REPO)))
    C.save_json(C.RUNS / "ar-generation" / "results.json", summary)
    log.info("generation (median MSE on good pixels of the normalized flux): %s", summary)


if __name__ == "__main__":
    main()
