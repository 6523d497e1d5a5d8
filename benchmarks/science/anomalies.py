"""S5: anomaly detection on the learned embeddings, without labels and after 100 oracle labels.

The CLIP models of ``galaxies`` and ``stars`` (saved by those benchmarks) embed every object of the
test split. An object is described by the concatenation of its modalities' embeddings in the shared
space; a missing modality (a galaxy without spectrum) takes the embedding of the modality it has,
which the shared space makes its best stand-in. A modality mismatch (e.g. a star's spectrum that does
not belong to its light curve) shows up as a point off the aligned manifold. Each population's
detector (``astrofm.downstream.anomaly``) is fitted on the train split and scores the test split on
the common [0, 1] scale; galaxies and stars are then ranked together. Precision in the top N (N = the
injected anomalies of the test split) is measured with no labels, then after 100 oracle labels
(5 rounds of 20) of the active-learning loop (``astrofm.downstream.active``). Each figure comes with a 95%
bootstrap interval over the test objects (N is a few dozen, so one object moves the precision by 1/N).
The best split of the top N between the populations, each taking the top of its own ranking, bounds what
any rule for putting their scores on one scale could find; it is recorded beside the precision.

Run: ``python -m benchmarks.science.anomalies`` after ``benchmarks.science.galaxies`` and ``.stars``, or
``python -m benchmarks.science.anomalies --model astrofm/hub/weights/astrofm-sim-small`` for one pretrained
folder that embeds both populations (the zoo model has all four modalities); ``--galaxies-model`` and
``--stars-model`` choose a folder per population.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.downstream.active import ActiveLearner, simulate_oracle
from astrofm.downstream.anomaly import AnomalyDetector
from astrofm.downstream.metrics import bootstrap_interval, precision_at_k
from astrofm.hub.pretrained import load_pretrained
from benchmarks.science import common as C
from benchmarks.science.galaxies import eval_config

log = logging.getLogger("benchmarks.science.anomalies")

POPULATIONS = {
    "galaxies": {"config": "galaxy-clip", "model": C.RUNS / "galaxies" / "galaxy-clip-model",
                 "id_column": "legacysurvey_object_id", "modalities": ("image", "spectrum")},
    "stars": {"config": "star-clip", "model": C.RUNS / "s3" / "star-clip-model",
              "id_column": "asassn_object_id", "modalities": ("lightcurve", "spectrum", "tabular")},
}


def features(z: dict[str, np.ndarray], modalities: tuple[str, ...]) -> np.ndarray:
    """Concatenated modality embeddings; a missing one is replaced by the mean of the present ones."""
    stack = np.stack([z[m] for m in modalities], axis=1)  # (n, M, D), NaN rows where absent
    present = np.isfinite(stack).all(axis=2)
    fill = np.nansum(np.where(present[..., None], stack, 0.0), axis=1) / present.sum(axis=1, keepdims=True)
    stack = np.where(present[..., None], stack, fill[:, None, :])
    return stack.reshape(len(stack), -1)


def anomaly_types(population: str, id_column: str, root: Path | None = None) -> dict[str, str]:
    """object id (in ``id_column``'s survey) -> injected anomaly type, ``""`` for normal objects."""
    from astrofm.sim import load_anomalies, load_truth

    root = root or C.DATA_ROOT
    truth = load_truth(root, population, [id_column, "truth_id"])
    table = load_anomalies(root)
    kind = {int(t): k.decode() for t, k in zip(table["truth_id"], table["anomaly_type"])}
    ids = truth[id_column]
    ids = np.char.decode(ids, "utf-8") if ids.dtype.kind == "S" else ids.astype(str)
    return {i: kind.get(int(t), "") for i, t in zip(ids.tolist(), truth["truth_id"].tolist())}


def precision_at_n(relevant: np.ndarray, scores: np.ndarray) -> float:
    """Precision in the top N, N = the number of ``relevant`` objects (at least 1)."""
    return precision_at_k(relevant, scores, max(1, int(relevant.sum())))


def found_per_type(kinds: np.ndarray, scores: np.ndarray, n: int) -> dict[str, str]:
    """Per anomaly type, 'found/total' among the ``n`` highest ``scores`` (``kinds``: type per object, "" = normal)."""
    top = kinds[np.argsort(-scores, kind="stable")[:n]]
    return {str(k): f"{int((top == k).sum())}/{int((kinds == k).sum())}" for k in sorted(set(kinds.tolist()) - {""})}


def found_curve(relevant: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    """(n + 1,) relevant objects among the ``a`` highest ``scores``, a = 0..n (flat past the last object)."""
    hits = np.cumsum(relevant[np.argsort(-scores, kind="stable")][:n])
    return np.concatenate([[0], hits, np.full(n - len(hits), hits[-1] if len(hits) else 0)]).astype(int)


def best_split(curves: dict[str, np.ndarray], n: int) -> tuple[int, dict[str, int]]:
    """The most relevant objects any split of a top ``n`` between populations holds, each population's share
    taken from the top of its own ranking (``curves``: :func:`found_curve` per population), and that split.

    No rule that puts the populations' scores on one scale can do better, so this bounds what such a rule costs.
    """
    best: dict[int, tuple[int, dict[str, int]]] = {0: (0, {})}  # objects taken -> (found, split) so far
    for name, curve in curves.items():
        extended: dict[int, tuple[int, dict[str, int]]] = {}
        for used, (found, split) in best.items():
            for share in range(n - used + 1):
                if used + share not in extended or found + curve[share] > extended[used + share][0]:
                    extended[used + share] = (found + int(curve[share]), {**split, name: share})
        best = extended
    return best[n]


def population_scores(name: str, spec: dict[str, Any], method: str, seed: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Test ids, features, common-scale anomaly scores and anomaly types ("" = normal) of one population."""
    model = load_pretrained(spec["model"])
    config = C.load_config(spec["config"])
    data = C.data_module(eval_config(config) if name == "galaxies" else {**config, "data": {
        **config["data"], "cache": False, "labels": []}})
    _, train_z = C.embed(model, data, "train", spec["modalities"])
    test_ids, test_z = C.embed(model, data, "test", spec["modalities"])
    detector = AnomalyDetector(method, seed=seed).fit(features(train_z, spec["modalities"]))
    x = features(test_z, spec["modalities"])
    kinds = anomaly_types(name, spec["id_column"])
    return test_ids, x, detector.score_samples(x), np.array([kinds.get(i, "") for i in test_ids])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--method", default="knn", choices=["iforest", "lof", "knn"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="another simulated universe (default: data/sim/small)")
    parser.add_argument("--preset", default="small", help="its simulator preset")
    parser.add_argument("--model", default=None, help="one pretrained folder for both populations")
    for name in POPULATIONS:
        parser.add_argument(f"--{name}-model", default=None, help=f"pretrained folder for the {name} (overrides "
                            "--model)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    C.setup(args.threads)
    C.use_root(args.root, args.preset)
    start = time.perf_counter()
    for name, spec in POPULATIONS.items():
        chosen = getattr(args, f"{name}_model") or args.model
        if chosen:
            spec["model"] = Path(chosen)
    missing = [str(s["model"]) for s in POPULATIONS.values() if not s["model"].exists()]
    if missing:
        raise SystemExit(f"run benchmarks.science.galaxies and .stars first (missing {missing})")
    parts = {name: population_scores(name, spec, args.method, args.seed) for name, spec in POPULATIONS.items()}
    width = max(p[1].shape[1] for p in parts.values())
    ids = np.concatenate([np.char.add(f"{name}:", p[0].astype(str)) for name, p in parts.items()])
    x = np.concatenate([np.pad(p[1], ((0, 0), (0, width - p[1].shape[1]))) for p in parts.values()])
    scores = np.concatenate([p[2] for p in parts.values()])
    kinds = np.concatenate([p[3] for p in parts.values()])
    relevant = kinds != ""
    top_n = int(relevant.sum())
    unsupervised = precision_at_n(relevant, scores)
    per_population = {}
    for name, (own_ids, _, own_scores, own_kinds) in parts.items():
        own = own_kinds != ""
        per_population[name] = {"anomalies": int(own.sum()), "objects": len(own_ids),
                                "precision_at_own_n": precision_at_n(own, own_scores)}
    best_found, shares = best_split({name: found_curve(p[3] != "", p[2], top_n) for name, p in parts.items()}, top_n)
    split_bound = {"precision": best_found / top_n, "top_n_shares": shares}
    learner = ActiveLearner(x, ids, scores, seed=args.seed)
    curve = simulate_oracle(learner, relevant, rounds=5, per_round=20, top_n=top_n)
    after = curve[-1]["precision"]
    rankings = {"no labels": scores, f"{curve[-1]['n_labels']} labels": learner.scores()}
    intervals = {k: bootstrap_interval(precision_at_n, relevant, s, seed=args.seed) for k, s in rankings.items()}
    found = {k: found_per_type(kinds, s, top_n) for k, s in rankings.items()}
    wall = time.perf_counter() - start
    log.info("top-%d precision: %.3f unsupervised, %.3f after %d labels (95%% bootstrap intervals %s); %s; found per "
             "type %s; best split of the top %d between populations %s", top_n, unsupervised, after,
             curve[-1]["n_labels"], intervals, per_population, found, top_n, split_bound)
    C.save_json(C.work_file("s5.json", args.no_record), {"unsupervised": unsupervised, "curve": curve,
                                                          "populations": per_population, "found_per_type": found,
                                                          "interval_95": intervals, "best_split": split_bound})
    if args.no_record:
        return
    from benchmarks.results import record

    models = sorted({str(s["model"]) for s in POPULATIONS.values()})
    common = {"seed": args.seed, "wall_s": round(wall, 1), "method": args.method, "top_n": top_n,
              "populations": per_population, "found_per_type": found, "interval_95": intervals, "models": models,
              "command": "python -m benchmarks.science.anomalies " + " ".join(sys.argv[1:])}
    note = (f"test split, galaxies + stars ranked together, N = {top_n} injected anomalies; detector {args.method} "
            f"fitted on train-split embeddings (concatenated modalities of the shared space); models {models}; "
            f"seed {args.seed}; wall {wall:.0f} s")
    split_note = (f"; the best split of the top {top_n} between the populations, each by its own ranking (a bound on "
                  f"any rule for putting their scores on one scale): precision {split_bound['precision']:.3f} with "
                  f"{shares}")
    (low0, high0), (low100, high100) = intervals.values()
    record("science.s5_anomaly_precision_0", unsupervised, target=">= 0.5", unit="precision",
           baseline=f"random ranking {top_n / len(ids):.3f}",
           notes=note + split_note + f"; 95% bootstrap interval over the test objects [{low0:.2f}, {high0:.2f}]",
           best_split=split_bound, **common)
    record("science.s5_anomaly_precision_100", after, target=">= 0.8", unit="precision",
           baseline="science.s5_anomaly_precision_0 (same ranking before labels)",
           notes=note + "; Astronomaly-style active learning, oracle labels 5 (anomaly) or 0, 5 rounds of 20; 95% "
           f"bootstrap interval over the test objects [{low100:.2f}, {high100:.2f}]", curve=curve, **common)
    if args.model and all(spec["model"] == Path(args.model) for spec in POPULATIONS.values()):
        C.update_card(args.model, {"science.s5_anomaly_precision_0": unsupervised,
                                   "science.s5_anomaly_precision_100": after})


if __name__ == "__main__":
    main()
