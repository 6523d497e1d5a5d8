"""S1, S2, S4 on the simulated galaxies: redshift from embeddings, and cross-modal retrieval.

1. CLIP-pretrain images + spectra (``--config``, default ``configs/science/galaxy-clip.yaml``; the recorded
   figures use ``galaxy-clip-degrade``; image–spectrum pairs of the train split) within a time budget.
2. Embed every galaxy of the train and test splits (images of all galaxies; spectra where they exist).
3. S1: kNN redshift (AstroCLIP protocol: standardized embeddings, k = 64, distance weights; train ->
   test, true z) from image embeddings, against three baselines measured here:
   the same encoder untrained (random init), PCA of the preprocessed pixels, and the same image encoder
   trained supervised (regression head, MSE) on 10% of the train labels, for as many optimizer steps as the
   CLIP run, keeping the weights of its best validation loss.
4. S2: the same kNN protocol on spectrum embeddings.
5. S4: image -> spectrum retrieval among the first 1,000 test galaxies with both (recall@10).

S1 and S2 are scored, as AstroCLIP's are, on the galaxies that have a redshift label in a survey: those whose
DESI-like redshift fit is secure (``ZWARN`` == 0, :func:`benchmarks.science.common.redshift_labels`), in both
the kNN's train set and the test set. The same figures over every normal galaxy are reported beside them.

Run: ``python -m benchmarks.science.galaxies`` (``--reuse`` evaluates a model saved by an earlier run;
``--model FOLDER`` evaluates a given pretrained folder, e.g. the zoo model
``astrofm/hub/weights/astrofm-sim-small``, instead of training one; the galaxy data and the supervised
baseline's recipe still come from ``configs/science/galaxy-clip.yaml``, the architecture and fitted transforms
from the folder). kNN R² on the encoders' pooled features (before the projection heads) is reported beside
each figure. Compare configs with ``--eval-split val`` (the same figures on the val split, not recorded), so
that the test split is scored once, for the recorded run.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astrofm.downstream.probes import KNNProbe
from astrofm.hub.pretrained import load_pretrained
from astrofm.model import AstroFM
from astrofm.training import FineTuneModule, PretrainModule
from benchmarks.science import common as C

log = logging.getLogger("benchmarks.science.galaxies")

N_CANDIDATES = 1000


def eval_config(config: dict[str, Any]) -> dict[str, Any]:
    """The training config with every galaxy (outer match: images without spectra too), no cache."""
    out = copy.deepcopy(config)
    out["data"]["sources"][0]["how"] = "outer"
    out["data"]["cache"] = False
    return out


def knn_r2(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
           labels: dict[str, float]) -> float:
    """AstroCLIP's zero-shot protocol: kNN (k = 64, distance-weighted, standardized) R² on labelled objects."""
    (train_ids, train_x), (test_ids, test_x) = train, test
    ok_train, y_train = C.aligned(train_ids, labels)
    ok_test, y_test = C.aligned(test_ids, labels)
    probe = KNNProbe(k=64).fit(train_x[ok_train], y_train)
    return float(probe.score(test_x[ok_test], y_test))


def present(ids: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(z).all(axis=1)
    return ids[keep], z[keep]


def recall_at_10(test_ids: np.ndarray, z: dict[str, np.ndarray]) -> tuple[float, dict[str, float]]:
    """Image -> spectrum recall@10 (and @1, @100) among the first 1,000 evaluated galaxies with both."""
    both = np.isfinite(z["image"]).all(axis=1) & np.isfinite(z["spectrum"]).all(axis=1)
    images, spectra = z["image"][both][:N_CANDIDATES], z["spectrum"][both][:N_CANDIDATES]
    similarity = images @ spectra.T
    rank = (similarity > np.diag(similarity)[:, None]).sum(axis=1)
    return float((rank < 10).mean()), {"recall_at_1": float((rank < 1).mean()),
                                       "recall_at_100": float((rank < 100).mean()), "candidates": len(images)}


def pixel_pca_r2(model: AstroFM, data: Any, labels: dict[str, float], n_components: int = 64,
                 split: str = "test") -> float:
    """kNN R² on ``split`` of PCA components of the preprocessed image pixels (the model's deterministic
    transforms), fitted on train."""
    from sklearn.decomposition import PCA

    def pixels(split: str) -> tuple[np.ndarray, np.ndarray]:
        ids, rows = [], []
        for batch in data.loader(split, batch_size=512, transform=model.transform):
            image = batch["image"]
            ids += [batch.object_id[i] for i in image.index.tolist()]
            rows.append(image.data["flux"].reshape(len(image), -1).numpy())
        return np.asarray(ids), np.concatenate(rows)

    train_ids, train_x = pixels("train")
    test_ids, test_x = pixels(split)
    pca = PCA(n_components=n_components, random_state=0).fit(train_x)
    return knn_r2((train_ids, pca.transform(train_x)), (test_ids, pca.transform(test_x)), labels)


def supervised_r2(config: dict[str, Any], architecture: dict[str, Any], labels: dict[str, float],
                  fraction: float, minutes: float, seed: int, modality: str = "image", steps: int | None = None,
                  split: str = "test") -> tuple[float, dict[str, Any]]:
    """The ``modality`` encoder + regression head trained from scratch on ``fraction`` of the train labels
    (R² over the ``split`` galaxies that have the modality; the weights of the best validation loss); ``steps``
    default: 30 epochs, 300 to 1500."""
    evaluation = eval_config(config)
    evaluation["data"]["labels"] = [{"path": "truth/galaxies.hdf5", "key": "legacysurvey_object_id",
                                     "columns": ["z"]}]
    data = C.data_module(evaluation)
    train_ids = np.array([i for i in data.splits["train"].object_ids if i in labels])
    chosen = np.sort(np.random.default_rng(seed).permutation(len(train_ids))[: round(fraction * len(train_ids))])
    manifest = C.subset_manifest(C.RUNS / "s1" / f"supervised-split-{fraction:g}.json", data, train_ids[chosen])
    data = C.data_module(evaluation, split=str(manifest), batch_size=64, cache=True)
    z = np.array([labels[i] for i in train_ids[chosen]])
    torch.manual_seed(seed)  # the same initialization whatever ran before in this process
    module = FineTuneModule(architecture, [modality], "z", task="regression", target_mean=float(z.mean()),
                            target_std=float(z.std()), optimizer={"lr": 1e-3, "warmup_steps": 50})
    steps = steps or int(np.clip(math.ceil(30 * len(chosen) / 64), 300, 1500))
    info = C.fit(module, data, name="s1-supervised", max_steps=steps, max_minutes=minutes, seed=seed,
                 val_every=max(50, steps // 10), monitor="val/loss", mode="min")
    predicted, truth = [], []
    module.eval()
    with torch.no_grad():
        for batch in data.loader(split, batch_size=256):
            values, valid = module.predict_batch(batch)
            target = batch.targets["z"].numpy()
            keep = valid.numpy() & np.array([i in labels for i in batch.object_id]) & np.isfinite(target)
            predicted.append(values.numpy()[keep])
            truth.append(target[keep])
    from sklearn.metrics import r2_score

    info["n_train_labels"] = len(chosen)
    return float(r2_score(np.concatenate(truth), np.concatenate(predicted))), info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="galaxy-clip", help="a config of configs/science (galaxy-clip, "
                        "galaxy-clip-degrade, ...; each header says what it changes and what it measured)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is faster on a busy 2-core box)")
    parser.add_argument("--minutes", type=float, default=22.0, help="CLIP training budget")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="CLIP optimizer steps (default: the config's; the cosine schedule spans them)")
    parser.add_argument("--supervised-minutes", type=float, default=15.0)
    parser.add_argument("--supervised-steps", type=int, default=None,
                        help="optimizer steps of the supervised 10%% baseline (default: as many as the CLIP run's)")
    parser.add_argument("--eval-split", default="test", choices=["test", "val"],
                        help="evaluate on val to compare configs; only a test evaluation is recorded")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accelerator", default="cpu", help="Lightning accelerator to train on (cpu, gpu, auto)")
    parser.add_argument("--reuse", action="store_true", help="evaluate the model saved by an earlier run")
    parser.add_argument("--root", default=None, help="another simulated universe (default: data/sim/small)")
    parser.add_argument("--preset", default="small", help="its simulator preset (simulated if missing)")
    parser.add_argument("--model", default=None, help="evaluate this pretrained folder (no training)")
    parser.add_argument("--workdir", default=None, help="work folder (default runs/science/galaxies)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the three S1 baselines")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    C.setup(args.threads)
    C.use_accelerator(args.accelerator)
    C.use_root(args.root, args.preset)
    start = time.perf_counter()
    config = C.load_config(args.config)
    workdir = Path(args.workdir) if args.workdir else C.RUNS / "galaxies"
    model_dir = Path(args.model) if args.model else workdir / "galaxy-clip-model"
    train_info: dict[str, Any] = {"model": str(model_dir)} if args.model else {}
    if args.reuse and (workdir / "results.json").exists():  # the training run's figures
        train_info = json.loads((workdir / "results.json").read_text()).get("train", {})
    if not args.model and not (args.reuse and model_dir.exists()):
        data = C.data_module(config)
        module = PretrainModule(**config["model"]["init_args"])
        train_info = C.fit(module, data, name="galaxy-clip", max_steps=args.max_steps or config["trainer"]["max_steps"],
                           max_minutes=args.minutes, seed=args.seed)
        train_info["command"] = "python -m benchmarks.science.galaxies " + " ".join(sys.argv[1:])
        module.model.save_pretrained(model_dir)
        del data, module
    model = load_pretrained(model_dir)
    train_wall = time.perf_counter() - start

    labels = C.redshift_labels()
    every_label = C.redshift_labels(secure_only=False)
    evaluation = C.data_module(eval_config(config))
    train_pooled: dict[str, np.ndarray] = {}
    test_pooled: dict[str, np.ndarray] = {}
    train_ids, train_z = C.embed(model, evaluation, "train", ["image", "spectrum"], pooled=train_pooled)
    test_ids, test_z = C.embed(model, evaluation, args.eval_split, ["image", "spectrum"], pooled=test_pooled)
    s1 = knn_r2(present(train_ids, train_z["image"]), present(test_ids, test_z["image"]), labels)
    s2 = knn_r2(present(train_ids, train_z["spectrum"]), present(test_ids, test_z["spectrum"]), labels)
    every_galaxy = {m: knn_r2(present(train_ids, train_z[m]), present(test_ids, test_z[m]), every_label)
                    for m in ("image", "spectrum")}
    pooled_r2 = {m: knn_r2(present(train_ids, train_pooled[m]), present(test_ids, test_pooled[m]), labels)
                 for m in ("image", "spectrum")}
    s4, s4_more = recall_at_10(test_ids, test_z)
    eval_wall = time.perf_counter() - start - train_wall
    log.info("S1 image kNN z R² %.4f, S2 spectrum kNN z R² %.4f, S4 recall@10 %.3f %s; pooled features %s; "
             "every normal galaxy %s", s1, s2, s4, s4_more, pooled_r2, every_galaxy)
    results = {"s1": s1, "s2": s2, "s4": s4, **s4_more, "pooled_r2": pooled_r2, "every_galaxy_r2": every_galaxy,
               "n_labels": len(labels), "train": train_info,
               "model": str(model_dir), "eval_split": args.eval_split, "eval_wall_s": eval_wall}
    C.save_json(workdir / "results.json", results)

    random_r2 = pca_r2 = supervised = math.nan
    supervised_info: dict[str, Any] = {}
    if not args.no_baselines:
        torch.manual_seed(args.seed)
        random_model = AstroFM.from_config(model.config.to_dict())  # same architecture and transforms, untrained
        random_r2 = knn_r2(present(*_image(random_model, evaluation, "train")),
                           present(*_image(random_model, evaluation, args.eval_split)), labels)
        pca_r2 = pixel_pca_r2(model, evaluation, labels, split=args.eval_split)
        log.info("baselines: random init %.4f, pixel PCA %.4f", random_r2, pca_r2)
        supervised, supervised_info = supervised_r2(config, model.config.to_dict(), labels, 0.1,
                                                    args.supervised_minutes, args.seed,
                                                    steps=args.supervised_steps or train_info.get("steps"),
                                                    split=args.eval_split)
    wall = time.perf_counter() - start
    log.info("baselines: random init %.4f, pixel PCA %.4f, supervised 10%% %.4f", random_r2, pca_r2, supervised)
    results.update({"random_init": random_r2, "pixel_pca": pca_r2, "supervised10": supervised,
                    "supervised_info": supervised_info, "wall_s": wall, "clip_wall_s": train_wall})
    C.save_json(workdir / "results.json", results)
    if args.no_record or args.eval_split != "test":
        return
    from benchmarks.results import record

    command = "python -m benchmarks.science.galaxies " + " ".join(sys.argv[1:])
    common = {"seed": args.seed, "wall_s": round(wall, 1), "clip_training": train_info, "threads": args.threads,
              "model": str(model_dir), "command": command}
    trained = "" if "steps" not in train_info else (
        f" (CLIP-trained {train_info['steps']} steps in {train_info['wall_s']:.0f} s on "
        f"{train_info.get('device', 'cpu')}"
        + (f" by {train_info['command']}" if "command" in train_info else "") + ")")
    protocol = (f"kNN k=64 distance-weighted on standardized embeddings, train -> test split, normal galaxies with a "
                f"secure DESI-like redshift (ZWARN == 0; {len(labels)} of {len(every_label)} labelled); model "
                f"{model_dir}{trained}; seed {args.seed}; wall {wall:.0f} s (evaluation {eval_wall:.0f} s)")
    record("science.s1_image_knn_z_r2", s1, target=">= 0.90", unit="R²",
           baseline=f"baselines in the same run: random init {random_r2:.3f}, pixel PCA {pca_r2:.3f}, "
                    f"supervised 10% labels {supervised:.3f}",
           notes=f"{protocol}; beats every baseline: {s1 > max(random_r2, pca_r2, supervised)}; kNN R² on the "
                 f"image encoder's pooled features (before the projection head): {pooled_r2['image']:.4f}; over every "
                 f"normal galaxy: {every_galaxy['image']:.4f}",
           **common)
    baselines = () if args.no_baselines else (
        ("science.s1_random_init_r2", random_r2, "same image encoder, untrained, same kNN protocol"),
        ("science.s1_pca_r2", pca_r2, "PCA (64 components) of preprocessed pixels, same kNN protocol"),
        ("science.s1_supervised10_r2", supervised,
         "same image encoder + regression head trained from scratch on 10% of the train labels (test R² of its "
         "predictions, best validation loss)"))
    for key, value, what in baselines:
        record(key, value, target=f"< {s1:.4f}", unit="R²", baseline="science.s1_image_knn_z_r2 of the same run",
               notes=f"{what}; {protocol}", **common,
               **({"supervised": supervised_info} if "supervised" in key else {}))
    record("science.s2_spectrum_knn_z_r2", s2, target=">= 0.99", unit="R²", baseline="none (absolute target)",
           notes=f"{protocol}; kNN R² on the spectrum encoder's pooled features (before the projection head): "
                 f"{pooled_r2['spectrum']:.4f}; over every normal galaxy with a spectrum: "
                 f"{every_galaxy['spectrum']:.4f}", **common)
    record("science.s4_img2spec_recall_at_10", s4, target=">= 0.6", unit="recall",
           baseline=f"chance {10 / s4_more['candidates']:.3f}",
           notes=f"image -> spectrum cosine retrieval among {s4_more['candidates']} test galaxies; "
                 f"recall@1 {s4_more['recall_at_1']:.3f}, recall@100 {s4_more['recall_at_100']:.3f}",
           **common, **s4_more)
    if args.model:
        C.update_card(model_dir, {"science.s1_image_knn_z_r2": s1, "science.s2_spectrum_knn_z_r2": s2,
                                  "science.s4_img2spec_recall_at_10": s4})


def _image(model: AstroFM, data: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    ids, z = C.embed(model, data, split, ["image"])
    return ids, z["image"]


if __name__ == "__main__":
    main()
