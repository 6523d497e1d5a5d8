"""How visible S5's injected galaxy anomalies are: in the pixels, and in the learned embeddings.

No unsupervised score finds anomalies that a classifier trained on thousands of labelled examples of the
same anomaly types cannot rank first. This simulates an anomaly-rich universe (the ``small`` preset with
another seed, 25% of its galaxies anomalous, no stars) and trains two supervised detectors on all of it:

- **pixels**: a CNN on the full 64-px cutouts (per-band S/N maps, arcsinh-compressed, plus the good-pixel
  mask), 16 anomalies and 48 normal galaxies per step, random flips and quarter turns;
- **embeddings**: a logistic regression on the S5 model's galaxy features (``benchmarks.science.anomalies``).

Each then ranks the ``small`` universe's test galaxies (the ones S5 ranks) and the top-N precision (N = their
injected anomalies) is recorded as ``science.s5_galaxy_pixel_ceiling`` and
``science.s5_galaxy_embedding_ceiling``, with the recall of each anomaly type in the top N.

Run: ``python -m benchmarks.science.anomaly_visibility --model astrofm/hub/weights/astrofm-sim-small``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from astrofm.downstream.metrics import precision_at_k
from astrofm.hub.pretrained import load_pretrained
from astrofm.model import AstroFM
from benchmarks.results import record
from benchmarks.science import common as C
from benchmarks.science.anomalies import POPULATIONS, anomaly_types, features, found_per_type
from benchmarks.science.galaxies import eval_config

log = logging.getLogger("benchmarks.science.anomaly_visibility")

IMAGES = "legacysurvey/dr10_south_21"
SPEC = POPULATIONS["galaxies"]


def snr_maps(root: Path) -> tuple[list[str], np.ndarray]:
    """Object ids and (N, 5, S, S) float16 inputs: arcsinh(S/N / 3) per band (bad pixels 0), then the mask."""
    import h5py

    ids: list[str] = []
    parts = []
    for path in sorted((root / IMAGES).glob("healpix=*/*.hdf5")):
        with h5py.File(path, "r") as shard:
            image, ivar, good = shard["image_array"][:], shard["image_ivar"][:], shard["image_mask"][:]
            sky_sigma = 1.0 / np.sqrt(np.median(ivar, axis=(2, 3), keepdims=True))
            snr = np.arcsinh(image / sky_sigma / 3.0) * good[:, None]
            parts.append(np.concatenate([snr, good[:, None]], axis=1).astype(np.float16))
            ids += np.char.decode(shard["object_id"][:], "utf-8").tolist()
    return ids, np.concatenate(parts)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.GELU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.GELU())


def pixel_classifier() -> nn.Sequential:
    """A 4-stage CNN, global max pooling, one logit (anomalous)."""
    return nn.Sequential(_block(5, 32), nn.MaxPool2d(2), _block(32, 64), nn.MaxPool2d(2), _block(64, 96),
                         nn.MaxPool2d(2), _block(96, 128), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(128, 1))


@torch.no_grad()
def pixel_scores(net: nn.Module, x: np.ndarray) -> np.ndarray:
    """Logits averaged over the four quarter turns (eval mode)."""
    net.eval()
    out = []
    for start in range(0, len(x), 512):
        batch = torch.from_numpy(x[start:start + 512].astype(np.float32))
        out.append(sum(net(torch.rot90(batch, k, (2, 3)))[:, 0] for k in range(4)) / 4)
    net.train()
    return torch.cat(out).numpy()


def train_pixels(x: np.ndarray, anomalous: np.ndarray, minutes: float, seed: int) -> tuple[nn.Module, int]:
    """Train the CNN on balanced batches for ``minutes``; returns it and its step count."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = pixel_classifier()
    optimizer = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0.05)
    positive, negative = np.flatnonzero(anomalous), np.flatnonzero(~anomalous)
    target = torch.cat([torch.ones(16), torch.zeros(48)])
    start, step = time.perf_counter(), 0
    while time.perf_counter() - start < minutes * 60:
        rows = np.concatenate([rng.choice(positive, 16), rng.choice(negative, 48)])
        batch = torch.rot90(torch.from_numpy(x[rows].astype(np.float32)), int(rng.integers(4)), (2, 3))
        if rng.random() < 0.5:
            batch = torch.flip(batch, (3,))
        loss = nn.functional.binary_cross_entropy_with_logits(net(batch)[:, 0], target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % 200 == 0:
            log.info("pixel CNN step %d, loss %.3f", step, loss.item())
    return net, step


def embedding_features(model: AstroFM, root: Path, splits: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Object ids and S5's galaxy features of ``splits`` of the universe at ``root``."""
    data = C.data_module(eval_config(C.load_config(SPEC["config"])), root=str(root), simulate=None)
    ids, parts = [], []
    for split in splits:
        split_ids, z = C.embed(model, data, split, SPEC["modalities"])
        ids.append(split_ids.astype(str))
        parts.append(features(z, SPEC["modalities"]))
    return np.concatenate(ids), np.concatenate(parts)


def top_n(scores: np.ndarray, kinds: np.ndarray, n: int) -> tuple[float, dict[str, str]]:
    """Top-``n`` precision and, per type, 'found/total' in the top ``n``."""
    return precision_at_k(kinds != "", scores, n), found_per_type(kinds, scores, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="astrofm/hub/weights/astrofm-sim-small", help="the S5 galaxy model")
    parser.add_argument("--rich-root", default=str(C.RUNS / "anomaly-rich-universe"))
    parser.add_argument("--fraction", type=float, default=0.25, help="anomalous fraction of the rich universe")
    parser.add_argument("--minutes", type=float, default=15.0, help="CNN training time")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    C.setup(args.threads)
    start = time.perf_counter()
    from astrofm.sim import simulate

    rich = Path(args.rich_root)
    simulate(rich, "small", seed=7, workers=args.threads, progress=False, n_stars=0,
             anomaly_fraction=args.fraction)
    rich_kinds = anomaly_types("galaxies", SPEC["id_column"], rich)
    test_kinds = anomaly_types("galaxies", SPEC["id_column"])
    data = C.data_module(eval_config(C.load_config(SPEC["config"])))
    test_ids = [str(i) for i in data.splits["test"].object_ids]
    kinds = np.array([test_kinds[i] for i in test_ids])
    n = int((kinds != "").sum())

    rich_ids, rich_x = snr_maps(rich)
    net, steps = train_pixels(rich_x, np.array([rich_kinds[i] != "" for i in rich_ids]), args.minutes, args.seed)
    ids, x = snr_maps(C.DATA_ROOT)
    row = {i: k for k, i in enumerate(ids)}
    pixels, pixel_types = top_n(pixel_scores(net, x[[row[i] for i in test_ids]]), kinds, n)

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = load_pretrained(args.model)
    train_ids, train_x = embedding_features(model, rich, ("train", "val", "test"))
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced"))
    classifier.fit(train_x, [rich_kinds[i] != "" for i in train_ids])
    eval_ids, eval_x = embedding_features(model, C.DATA_ROOT, ("test",))
    order = {i: k for k, i in enumerate(eval_ids.tolist())}
    embedded = classifier.decision_function(eval_x[[order[i] for i in test_ids]])
    embedding, embedding_types = top_n(embedded, kinds, n)
    wall = time.perf_counter() - start
    log.info("top-%d precision of supervised detectors on the test galaxies: pixels %.3f %s, embeddings %.3f %s",
             n, pixels, pixel_types, embedding, embedding_types)
    if args.no_record:
        return
    common = {"seed": args.seed, "wall_s": round(wall, 1), "top_n": n, "rich_anomalies": int(sum(
        k != "" for k in rich_kinds.values())), "rich_galaxies": len(rich_kinds),
        "command": "python -m benchmarks.science.anomaly_visibility " + " ".join(sys.argv[1:])}
    setting = (f"trained on an anomaly-rich simulated universe (small preset, seed 7, {args.fraction:.0%} of "
               f"{len(rich_kinds)} galaxies anomalous), ranked the {len(kinds)} test galaxies of data/sim/small, "
               f"N = {n}")
    record("science.s5_galaxy_pixel_ceiling", pixels, target="context for S5 (>= 0.5 / >= 0.8)", unit="precision",
           baseline="S5 galaxies' own precision (science.s5_anomaly_precision_0 populations)",
           notes=f"supervised CNN on full 64-px S/N maps, {steps} steps of 64 in {args.minutes:g} min; {setting}; "
                 f"found per type in the top N: {pixel_types}", per_type=pixel_types, steps=steps, **common)
    record("science.s5_galaxy_embedding_ceiling", embedding, target="context for S5 (>= 0.5 / >= 0.8)",
           unit="precision", baseline="science.s5_galaxy_pixel_ceiling (same objects, same labels)",
           notes=f"logistic regression on S5's galaxy features of {args.model}; {setting}; found per type in the "
                 f"top N: {embedding_types}", per_type=embedding_types, model=args.model, **common)


if __name__ == "__main__":
    main()
