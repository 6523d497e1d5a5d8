"""What a galaxy embedding keeps: gradient-boosted trees read true properties from it (context for S1 and S2).

For one modality of a pretrained model (default: the recorded S1/S2 model), embed the normal galaxies of the
train and test splits. Trees (the estimator of the S1 information limit) trained on the train embeddings
predict each truth column: redshift, the DESI-like spectrum's log10 S/N per pixel, r magnitude, g-r, r-i and
i-z; the test R² is reported. Beside them: S1/S2's own kNN redshift R² over all test galaxies and split at
median S/N per pixel 0.5 (where the template-fit bound is 0.997 above and much lower below). Trees that read a
property far better than redshift show what the contrastive objective organized the embedding by.

Run: ``python -m benchmarks.science.embedding_content --modality spectrum`` (or ``image``).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from astrofm.hub.pretrained import load_pretrained
from astrofm.sim import load_truth
from astrofm.sim.validation import tree_regression_r2
from benchmarks.results import record
from benchmarks.science import common as C
from benchmarks.science.galaxies import eval_config, knn_r2, present

log = logging.getLogger("benchmarks.science.embedding_content")

#: The shipped model that the S1/S2/S4 records are measured on.
DEFAULT_MODEL = "astrofm/hub/weights/astrofm-sim-galaxies"
SNR_CUT = 0.5


def truth_properties(ids: np.ndarray) -> dict[str, np.ndarray]:
    """Truth columns of the galaxies with these Legacy Survey ids (NaN rows for ids not labelled)."""
    labels = C.truth_labels("galaxies", "legacysurvey_object_id", "truth_id")
    table = load_truth(C.DATA_ROOT, "galaxies", ["truth_id", "z", "desi_snr", "mag_g", "mag_r", "mag_i", "mag_z"])
    row = {int(t): i for i, t in enumerate(table["truth_id"])}
    index = np.array([row.get(int(labels[i]), -1) if i in labels else -1 for i in ids])
    known = index >= 0

    def column(name: str) -> np.ndarray:
        return np.where(known, np.asarray(table[name], float)[index], np.nan)

    return {"z": column("z"), "log10_snr": np.log10(column("desi_snr") + 1e-3), "mag_r": column("mag_r"),
            "g-r": column("mag_g") - column("mag_r"), "r-i": column("mag_r") - column("mag_i"),
            "i-z": column("mag_i") - column("mag_z")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", required=True, choices=["image", "spectrum"])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a pretrained folder with image and spectrum")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    C.setup(args.threads)
    C.use_root(None, "small")
    start = time.perf_counter()
    model = load_pretrained(args.model)
    data = C.data_module(eval_config(C.load_config("galaxy-clip")))
    embedded = {}
    for split in ("train", "test"):
        ids, vectors = C.embed(model, data, split, [args.modality])
        ids, x = present(ids, vectors[args.modality])
        embedded[split] = (ids, x, truth_properties(ids))
    (train_ids, train_x, train_truth), (test_ids, test_x, test_truth) = embedded["train"], embedded["test"]
    trees = {}
    for name in train_truth:
        keep_train, keep_test = np.isfinite(train_truth[name]), np.isfinite(test_truth[name])
        trees[name] = tree_regression_r2(train_x[keep_train], train_truth[name][keep_train], test_x[keep_test],
                                         test_truth[name][keep_test], args.seed)
    labels = {i: z for ids, _, truth in embedded.values() for i, z in zip(ids.tolist(), truth["z"]) if np.isfinite(z)}
    bright = test_truth["log10_snr"] >= np.log10(SNR_CUT + 1e-3)
    knn = {"all": knn_r2((train_ids, train_x), (test_ids, test_x), labels),
           f"snr>={SNR_CUT}": knn_r2((train_ids, train_x), (test_ids[bright], test_x[bright]), labels),
           f"snr<{SNR_CUT}": knn_r2((train_ids, train_x), (test_ids[~bright], test_x[~bright]), labels)}
    wall = time.perf_counter() - start
    log.info("%s embedding of %s: trees R² %s; kNN z R² %s", args.modality, args.model, trees, knn)
    results = {"trees_r2": trees, "knn_z_r2": knn, "fraction_snr_above_cut": float(bright.mean()),
               "model": args.model, "n_train": len(train_ids), "n_test": len(test_ids)}
    C.save_json(C.RUNS / "embedding-content" / f"{Path(args.model).parent.name}-{args.modality}.json", results)
    key, target = C.redshift_context(args.modality, "embedding_content")
    record(key, trees["z"], target=target, unit="R²", baseline="kNN z R² of the same embedding (knn_z_r2)",
           command=f"python -m benchmarks.science.embedding_content --modality {args.modality} --model {args.model}",
           notes=f"gradient-boosted trees on the {args.modality} embedding, train -> test normal galaxies; test R² "
                 f"per truth property: " + ", ".join(f"{k} {v:.3f}" for k, v in trees.items())
                 + "; kNN z R² " + ", ".join(f"{k} {v:.3f}" for k, v in knn.items()),
           wall_s=round(wall, 1), seed=args.seed, **results)


if __name__ == "__main__":
    main()
