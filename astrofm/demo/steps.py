"""The demo's eight steps, one function each: ``step(ctx) -> StepResult``.

Every step reads what earlier steps left under the root (the universe, the model, the store) and
returns its metrics and figures; :mod:`astrofm.demo.pipeline` runs them in order and skips the ones
already finished.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from astrofm.demo import baselines as B
from astrofm.demo import data as D
from astrofm.demo import figures as F
from astrofm.demo.context import Context, StepResult, resolve_model
from astrofm.downstream import plots

log = logging.getLogger(__name__)

#: Objects of each population in the probes' train and test sets (normal objects of the embedded sample).
PROBE_TRAIN = 2000
PROBE_TEST = 1000
#: Test galaxies (with image and spectrum) among which image -> spectrum search is measured.
SEARCH_CANDIDATES = 1000
#: Objects labelled by the simulated expert in the active-learning round.
ACTIVE_LABELS = 20
#: Objects per UMAP map.
MAP_OBJECTS = 4000
#: The AR demo's training: steps and seconds, whichever ends first, per preset.
AR_TRAINING = {"tiny": (200, 60.0), "small": (1500, 90.0)}


# -- 1. the universe --------------------------------------------------------------------------------
def simulate(ctx: Context) -> StepResult:
    from astrofm.sim import simulate as run_simulation
    from astrofm.sim.example import example_figure

    universe = run_simulation(ctx.universe, preset=ctx.options.preset, seed=ctx.seed, workers=ctx.options.workers,
                              progress=ctx.progress)
    counts = {population: len(universe.truth(population)["truth_id"]) for population in ("galaxies", "stars")}
    result = StepResult({"root": str(universe.root), "preset": universe.preset, "seed": universe.seed,
                         "objects": counts})
    try:
        plots.save(example_figure(universe), ctx.layout.figure("universe"))
        result.figures.append(("universe.png", "A simulated galaxy (image, spectrum) and a variable star's light "
                                               "curve, as the data layer reads them."))
    except (ValueError, IndexError) as error:  # a tiny universe may lack the example's objects
        log.info("no example figure: %s", error)
    return result


# -- 2. the model -----------------------------------------------------------------------------------
def model(ctx: Context) -> StepResult:
    from astrofm.demo.training import train_model
    from astrofm.hub.pretrained import card_of, model_identity

    info: dict[str, Any] = {}
    if ctx.options.train:
        info = train_model(ctx.universe, ctx.layout.model, ctx.layout.cache / "training", preset=ctx.options.preset,
                           config=ctx.options.config, minutes=ctx.options.train_minutes, seed=ctx.seed,
                           progress=ctx.progress)
        folder = ctx.layout.model
    else:
        folder = resolve_model(ctx.options.model)
    ctx.__dict__.pop("model_folder", None)
    ctx.model_folder = folder
    loaded = ctx.model
    name, version = model_identity(folder)
    metrics = {"folder": str(folder), "name": name, "version": version, "modalities": list(loaded.modalities),
               "embed_dim": loaded.embed_dim, "parameters": loaded.num_parameters(),
               "trained_here": ctx.options.train, "training": info, "description": card_of(folder).description}
    return StepResult(metrics)


# -- 3. embeddings ----------------------------------------------------------------------------------
def embed(ctx: Context) -> StepResult:
    from astrofm.demo.training import flush_denormals
    from astrofm.hub.pretrained import model_identity
    from astrofm.inference import embed_to_store
    from astrofm.training import SubsetSource
    from astrofm.utils.precision import inference_autocast, native_bf16

    ids, sample = [], {}
    for population in ctx.populations:
        pop = ctx.population(population)
        rows = D.sample_rows(pop, ctx.seed)
        sample[population] = {split: len(r) for split, r in rows.items()}
        ids += pop.ids[np.concatenate(list(rows.values()))].tolist()
    whole = D.data_module(ctx.universe, ctx.modalities).open_source()
    source = SubsetSource(whole, ids, name=f"{whole.name}:demo-sample")
    name, version = model_identity(ctx.model_folder)
    ctx.model  # noqa: B018  (loaded before the flag is set: imports may clear it)
    flush_denormals()
    with inference_autocast("cpu"):
        embed_to_store(ctx.model, source, ctx.layout.store, model_name=name, model_version=version, batch_size=128,
                       progress=ctx.progress)
    ctx.__dict__.pop("store", None)
    counts = {m: ctx.store.count(m) for m in ctx.store.modalities}
    return StepResult({"store": str(ctx.layout.store), "objects": len(source), "of": len(whole), "sample": sample,
                       "vectors": counts, "dim": ctx.model.embed_dim,
                       "precision": "bf16 autocast" if native_bf16("cpu") else "float32 (no native bf16)"})


# -- 4. probes --------------------------------------------------------------------------------------
def _knn(task: str, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], *,
         redshift: bool = False) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """kNN probe (k = 64, distance-weighted, standardized: AstroCLIP's protocol) on rows with finite inputs."""
    from astrofm.downstream.probes import KNNProbe

    (x_train, y_train), (x_test, y_test) = train, test
    ok_train, ok_test = np.isfinite(x_train).all(axis=1), np.isfinite(x_test).all(axis=1)
    probe = KNNProbe(task="regression" if task == "regression" else "classification")
    probe.fit(x_train[ok_train], y_train[ok_train])
    predicted = probe.predict(x_test[ok_test])
    metrics = probe.evaluate(y_test[ok_test], predicted, redshift=redshift)
    metrics["n_train"], metrics["n_test"] = int(ok_train.sum()), int(ok_test.sum())
    return metrics, y_test[ok_test], predicted


def _score(metrics: dict[str, Any], task: str) -> float:
    return float(metrics["r2"] if task == "regression" else metrics["accuracy"])


def _compare(task: str, target: str, rows: tuple[np.ndarray, np.ndarray], views: dict[str, dict[str, np.ndarray]],
             colours: np.ndarray | None, labels: np.ndarray, seed: int, *, redshift: bool = False
             ) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]]]:
    """The model, random-init, PCA and colours kNN scores of one target; and the model's predictions."""
    train, test = rows
    n_train = len(train)
    y = labels[np.concatenate([train, test])]
    y_train, y_test = y[:n_train], y[n_train:]
    result: dict[str, Any] = {"target": target, "metric": "r2" if task == "regression" else "accuracy",
                              "model": {}, "random_init": {}, "pca": {}, "details": {}}
    predictions = {}
    for source in views["model"]:
        for contender in ("model", "random_init", "pca"):
            X = views[contender][source]
            if contender == "pca":
                have = np.isfinite(X).all(axis=1)
                fit_rows = have[:n_train]
                if fit_rows.sum() < 2:
                    continue
                X = X.copy()
                transformed = B.pca_features(X[:n_train][fit_rows], X[have], seed=seed)
                out = np.full((len(X), transformed[1].shape[1]), np.nan, np.float32)
                out[have] = transformed[1]
                X = out
            metrics, truth, predicted = _knn(task, (X[:n_train], y_train), (X[n_train:], y_test), redshift=redshift)
            result[contender][source] = _score(metrics, task)
            result["details"][f"{contender}/{source}"] = {k: v for k, v in metrics.items()
                                                         if k not in ("confusion_matrix", "labels")}
            if contender == "model":
                predictions[source] = (truth, predicted, metrics)
    if colours is not None:
        metrics, _, _ = _knn(task, (colours[:n_train], y_train), (colours[n_train:], y_test), redshift=redshift)
        result["colours"] = _score(metrics, task)
        result["details"]["colours"] = {k: v for k, v in metrics.items() if k not in ("confusion_matrix", "labels")}
    else:
        result["colours"] = None
    result["beats_random_and_pca"] = {source: all(value > result[b].get(source, -np.inf)
                                                  for b in ("random_init", "pca"))
                                      for source, value in result["model"].items()}
    result["beats_colours"] = {source: result["colours"] is None or value > result["colours"]
                               for source, value in result["model"].items()}
    return result, predictions


def _population_views(ctx: Context, population: str, modalities: list[str], n_train: int, n_test: int
                      ) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, dict[str, np.ndarray]], np.ndarray]:
    """Positions of the train and test objects, per contender the features of each modality (plus "all"
    when there are several), and the population rows of the objects."""
    pop = ctx.population(population)
    sample = D.sample_rows(pop, ctx.seed)
    train = D.pick(pop.labelled(sample["train"]), n_train, ctx.seed)
    test = D.pick(pop.labelled(sample["test"]), n_test, ctx.seed + 1)
    rows = np.concatenate([train, test])
    extra = B.subset_views(ctx.model, ctx.universe, population, pop.ids[rows].tolist(), seed=ctx.seed,
                           progress=ctx.progress)
    ctx.layout.cache.mkdir(parents=True, exist_ok=True)  # for the search step's random-init baseline
    np.savez(ctx.layout.cache / f"random-init-{population}.npz", ids=pop.ids[rows].astype(str),
             test=np.arange(len(rows)) >= len(train), **extra["random"])
    views: dict[str, dict[str, np.ndarray]] = {"model": {}, "random_init": {}, "pca": {}}
    for modality in modalities:
        views["model"][modality] = ctx.aligned(population, modality)[rows]
        views["random_init"][modality] = extra["random"][modality]
        views["pca"][modality] = extra["inputs"][modality]
    if len(modalities) > 1:
        for contender in views:
            views[contender]["all"] = np.concatenate([views[contender][m] for m in modalities], axis=1)
    return (np.arange(len(train)), np.arange(len(train), len(rows))), views, rows


def probes(ctx: Context) -> StepResult:
    limit_train, limit_test = PROBE_TRAIN, PROBE_TEST
    tasks: dict[str, Any] = {}
    result = StepResult()
    if "galaxies" in ctx.populations:
        modalities = [m for m in ("image", "spectrum") if m in ctx.modalities]
        split, views, rows = _population_views(ctx, "galaxies", modalities, limit_train, limit_test)
        views = {k: {m: v for m, v in per.items() if m != "all"} for k, per in views.items()}
        pop = ctx.population("galaxies")
        colours = pop.colours[rows]
        for target, title, redshift in (("z", "redshift", True), ("log_mstar", "stellar mass", False)):
            labels = pop.labels[target][rows]
            tasks[f"galaxy_{target}"], predictions = _compare("regression", target, split, views, colours, labels,
                                                              ctx.seed, redshift=redshift)
            tasks[f"galaxy_{target}"]["title"] = f"galaxies: {title}"
            for source, (truth, predicted, metrics) in predictions.items():
                name = f"probe_{target}_{source}"
                figure = plots.plot_true_vs_predicted(truth, predicted, metrics, label=target, redshift=redshift)
                plots.save(figure, ctx.layout.figure(name))
                result.figures.append((f"{name}.png", f"kNN probe of {title} from the model's {source} embeddings "
                                                      f"(test galaxies)."))
    if "stars" in ctx.populations:
        modalities = [m for m in ("lightcurve", "spectrum", "tabular") if m in ctx.modalities]
        split, views, rows = _population_views(ctx, "stars", modalities, limit_train, limit_test)
        keep = {m for m in ("lightcurve", "all") if m in views["model"]} or {modalities[0]}
        views = {k: {m: v for m, v in per.items() if m in keep} for k, per in views.items()}
        pop = ctx.population("stars")
        tasks["star_class"], predictions = _compare("classification", "class", split, views, pop.colours[rows],
                                                    pop.labels["class"][rows], ctx.seed)
        tasks["star_class"]["title"] = "stars: variability class"
        source = "all" if "all" in predictions else next(iter(predictions))
        metrics = predictions[source][2]
        plots.save(plots.plot_confusion(metrics["confusion_matrix"], metrics["labels"]),
                   ctx.layout.figure("probe_class_confusion"))
        result.figures.append(("probe_class_confusion.png", f"Star classes from the model's {source} embeddings: "
                                                            "confusion matrix (rows: true class)."))
    plots.save(F.probe_comparison(tasks), ctx.layout.figure("probes"))
    result.figures.insert(0, ("probes.png", "Probe scores of the model's embeddings against the baselines, all "
                                            "measured in this run on the same train/test objects."))
    result.metrics = {"probe": "kNN, k = 64, distance-weighted, standardized inputs", "tasks": tasks}
    return result


# -- 5. cross-modal search --------------------------------------------------------------------------
def search(ctx: Context) -> StepResult:
    if not {"image", "spectrum"} <= set(ctx.modalities) or "galaxies" not in ctx.populations:
        return StepResult({"skipped": "the model lacks image or spectrum"})
    pop = ctx.population("galaxies")
    images, spectra = ctx.aligned("galaxies", "image"), ctx.aligned("galaxies", "spectrum")
    cached = ctx.layout.cache / "random-init-galaxies.npz"
    if cached.exists():  # the probes' test galaxies, with their random-init embeddings
        saved = np.load(cached, allow_pickle=False)
        rows = pop.rows(saved["ids"][saved["test"]])
        random = {m: saved[m][saved["test"]] for m in ("image", "spectrum")}
    else:
        rows = np.flatnonzero(pop.split == "test")
        rows = rows[np.isfinite(images[rows]).all(axis=1) & np.isfinite(spectra[rows]).all(axis=1)]
        rows = rows[:SEARCH_CANDIDATES]
        random = B.subset_views(ctx.model, ctx.universe, "galaxies", pop.ids[rows].tolist(), seed=ctx.seed,
                                progress=ctx.progress)["random"]
    both = np.isfinite(images[rows]).all(axis=1) & np.isfinite(spectra[rows]).all(axis=1)
    both &= np.isfinite(random["image"]).all(axis=1) & np.isfinite(random["spectrum"]).all(axis=1)
    rows, random = rows[both][:SEARCH_CANDIDATES], {m: v[both][:SEARCH_CANDIDATES] for m, v in random.items()}
    recall = _recall(images[rows], spectra[rows])
    random_recall = _recall(random["image"], random["spectrum"])
    metrics = {"candidates": len(rows), "model": recall, "random_init": random_recall,
               "chance_recall_at_10": min(1.0, 10 / max(len(rows), 1))}
    # the figure: four queries and their five nearest spectra
    similarity = images[rows[:4]] @ spectra[rows].T
    top = np.argsort(-similarity, axis=1)[:, :5]
    source = D.data_module(ctx.universe, ["image", "spectrum"], populations=["galaxies"]).open_source()
    queries = [source.get(oid) for oid in pop.ids[rows[:4]].tolist()]
    hits = [[source.get(oid) for oid in pop.ids[rows[t]].tolist()] for t in top]
    figure = F.search_grid(queries, hits, np.take_along_axis(similarity, top, axis=1), pop.ids[rows[:4]].tolist())
    plots.save(figure, ctx.layout.figure("search"))
    caption = (f"Image -> spectrum search among {len(rows)} test galaxies: each query image and the five spectra "
               "nearest to it in the shared space (its own spectrum framed in green).")
    return StepResult(metrics, [("search.png", caption)])


def _recall(queries: np.ndarray, base: np.ndarray) -> dict[str, float]:
    """Recall@1/10 of each query's own counterpart (row i of ``base``) by cosine similarity."""
    similarity = queries @ base.T
    rank = (similarity > np.diag(similarity)[:, None]).sum(axis=1)
    return {"recall_at_1": float((rank < 1).mean()), "recall_at_10": float((rank < 10).mean())}


# -- 6. anomalies and active learning -----------------------------------------------------------------
def anomalies(ctx: Context) -> StepResult:
    from astrofm.downstream.active import ActiveLearner, simulate_oracle
    from astrofm.downstream.anomaly import AnomalyDetector
    from astrofm.downstream.metrics import precision_at_k

    results: dict[str, Any] = {}
    out = StepResult()
    for population in ctx.populations:
        pop = ctx.population(population)
        order = ("image", "spectrum") if population == "galaxies" else ("lightcurve", "spectrum", "tabular")
        modalities = [m for m in order if m in ctx.store.modalities]
        X = np.concatenate([ctx.aligned(population, m) for m in modalities], axis=1)
        if population == "galaxies" and "image" in modalities:
            X = ctx.aligned(population, "image")  # every galaxy has an image; 40% lack a spectrum
            modalities = ["image"]
        rows = np.flatnonzero(np.isfinite(X).all(axis=1))
        relevant = pop.is_anomaly[rows]
        if relevant.sum() == 0:
            results[population] = {"skipped": "no anomalies among the embedded objects"}
            continue
        scores = AnomalyDetector("iforest", seed=ctx.seed).fit_score(X[rows])
        top_n = int(relevant.sum())
        learner = ActiveLearner(X[rows], pop.ids[rows], scores, seed=ctx.seed)
        curve = simulate_oracle(learner, relevant, rounds=1, per_round=ACTIVE_LABELS, top_n=top_n)
        results[population] = {"embeddings": "+".join(modalities), "objects": len(rows), "anomalies": top_n,
                               "top_n": top_n, "labels": ACTIVE_LABELS, "chance": float(relevant.mean()),
                               "precision_before": float(precision_at_k(relevant, scores, top_n)),
                               "precision_after": float(curve[-1]["precision"]), "curve": curve}
        if population == "galaxies" and "image" in ctx.modalities:
            best = rows[np.argsort(-scores)[:12]]
            samples = plots.load_samples([ctx.universe / D.DATASETS["galaxies"][0][1]], pop.ids[best].tolist())
            titles = [pop.anomaly_type[r] or "normal" for r in best]
            plots.save(plots.gallery(samples, titles, modality="image", title="Most anomalous galaxies (truth type)"),
                       ctx.layout.figure("anomalies_gallery"))
            out.figures.append(("anomalies_gallery.png", "The twelve galaxies ranked most anomalous by an isolation "
                                                         "forest on the image embeddings, titled with their truth."))
    done = {k: v for k, v in results.items() if "skipped" not in v}
    if done:
        plots.save(F.precision_before_after(done), ctx.layout.figure("anomalies"))
        out.figures.insert(0, ("anomalies.png", f"Precision of the anomaly ranking in the top N (N = number of true "
                                                f"anomalies), before and after one simulated active-learning round "
                                                f"({ACTIVE_LABELS} objects labelled by an oracle from the truth)."))
    out.metrics = {"method": "isolation forest (200 trees) + Astronomaly-style active learning", "populations": results}
    return out


# -- 7. maps ----------------------------------------------------------------------------------------
def maps(ctx: Context) -> StepResult:
    from astrofm.downstream.maps import umap_projection

    out = StepResult()
    plan = []
    if "galaxies" in ctx.populations:
        modality = "image" if "image" in ctx.modalities else "spectrum"
        plan.append(("galaxies", modality, "z", "redshift"))
    if "stars" in ctx.populations:
        modality = next(m for m in ("lightcurve", "spectrum", "tabular") if m in ctx.modalities)
        plan.append(("stars", modality, "class", "class"))
    for population, modality, target, label in plan:
        pop = ctx.population(population)
        X = ctx.aligned(population, modality)
        rows = D.pick(np.flatnonzero(np.isfinite(X).all(axis=1) & ~pop.is_anomaly), MAP_OBJECTS, ctx.seed)
        xy = umap_projection(X[rows], seed=ctx.seed, cache_dir=ctx.layout.cache)
        name = f"map_{population}"
        figure = plots.plot_map(xy, pop.labels[target][rows], label=label,
                                title=f"{population}: {modality} embeddings")
        plots.save(figure, ctx.layout.figure(name))
        out.figures.append((f"{name}.png", f"UMAP of {len(rows)} {population}' {modality} embeddings, coloured by "
                                           f"true {label}."))
        out.metrics[population] = {"modality": modality, "objects": len(rows), "colour": target}
    return out


# -- 8. autoregressive completion ---------------------------------------------------------------------
def autoregressive(ctx: Context) -> StepResult:
    import torch

    from astrofm.ar import generate
    from astrofm.demo.training import flush_denormals, train_ar

    steps, seconds = AR_TRAINING[ctx.options.preset]
    model, data, info = train_ar(ctx.universe, steps=steps, seconds=seconds, seed=ctx.seed, progress=ctx.progress)
    tokenizer = model.tokenizer("spectrum")
    mean_flux = info.pop("mean_flux")
    batch = next(iter(data.loader("test", batch_size=64, transform=model.transform)))
    spectrum = batch["spectrum"]
    length = spectrum.data["flux"].shape[1]
    observed = spectrum.data["flux"].float().numpy()
    good = ~spectrum.data["mask"].bool().numpy()
    windows = int(tokenizer.tokenize(spectrum).mask.sum(dim=1).min())
    prefix = max(1, int(0.4 * windows))
    flush_denormals()
    with torch.no_grad():
        generated = generate(model, batch, "spectrum", prefix)
    completed = tokenizer.to_flux(generated.values, length).float().numpy()
    new = tokenizer.to_flux(generated.generated[..., None].expand_as(generated.values).float(), length).numpy() > 0
    after = good & new
    mse = ((completed - observed) ** 2 * after).sum(axis=1) / np.maximum(after.sum(axis=1), 1)
    baseline = ((mean_flux[None] - observed) ** 2 * after).sum(axis=1) / np.maximum(after.sum(axis=1), 1)
    wavelength = spectrum.data["lambda"][0].numpy()
    shown = [0, 1, 2][: len(observed)]
    cuts = [int(np.argmax(new[i])) if new[i].any() else length for i in shown]
    titles = [f"test galaxy {batch.object_id[int(spectrum.index[i])]}: MSE {mse[i]:.3f} "
              f"(mean train spectrum {baseline[i]:.3f})" for i in shown]
    figure = F.ar_completion(wavelength, observed[shown], good[shown], completed[shown], cuts, titles)
    plots.save(figure, ctx.layout.figure("ar_completion"))
    metrics = {"model": AR_MODEL_NOTE, "training": info, "prefix_windows": prefix, "windows": windows,
               "test_spectra": len(observed), "median_mse": float(np.median(mse)),
               "median_mse_mean_spectrum": float(np.median(baseline))}
    caption = (f"Next-token completion: a tiny AR model ({info['steps']} training steps) is given the first {prefix} "
               f"of {windows} spectrum windows (left of the dotted line) and predicts the rest window by window.")
    return StepResult(metrics, [("ar_completion.png", caption)])


AR_MODEL_NOTE = "spectrum-window decoder (dim 64, depth 2), greedy next-token regression"
