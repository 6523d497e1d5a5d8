"""Probes: scikit-learn-style estimators that read a target off frozen embeddings.

- :class:`KNNProbe` — AstroCLIP's zero-shot protocol by default: StandardScaler, k = 64, distance-weighted;
- :class:`LinearProbe` — ridge regression or logistic regression on standardized embeddings;
- :class:`MLPProbe` — a small torch MLP with early stopping on a held-out part of the training set.

Each has ``fit(X, y)``, ``predict(X)`` and ``score(X, y)`` (R² for regression, accuracy for
classification), works with ``sklearn.base.clone``, and is deterministic given its ``seed``.
:func:`cross_validate` and :func:`label_fraction_curve` evaluate any of them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, clone

from astrofm.downstream import metrics as M
from astrofm.downstream.validation import check_targets, check_vectors
from astrofm.errors import ConfigError

log = logging.getLogger(__name__)

Task = Literal["regression", "classification"]
TASKS = ("regression", "classification")
#: The label fractions of the issue's label-efficiency curves.
LABEL_FRACTIONS = (0.01, 0.1, 0.25, 0.5, 1.0)


class _Probe(BaseEstimator):
    """Shared input checks, scoring and metrics; subclasses implement ``_fit`` and ``_predict``."""

    task: str

    def fit(self, X: Any, y: Any) -> _Probe:
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, not {self.task!r}")
        X = check_vectors(X, where="probe input", field="X")
        y = check_targets(y, len(X), where="probe input", field="y", numeric=self.task == "regression")
        if len(X) == 0:
            raise ConfigError("cannot fit a probe on zero samples")
        self.n_features_in_ = X.shape[1]
        if self.task == "classification":
            self.classes_ = np.unique(y)
        self._fit(X, y)
        return self

    def predict(self, X: Any) -> np.ndarray:
        X = check_vectors(X, where="probe input", field="X", dim=getattr(self, "n_features_in_", None))
        return self._predict(X)

    def score(self, X: Any, y: Any) -> float:
        """R² (regression) or accuracy (classification)."""
        y_pred = self.predict(X)
        key = "r2" if self.task == "regression" else "accuracy"
        return self.evaluate(y, y_pred)[key]

    def evaluate(self, y_true: Any, y_pred: Any, *, redshift: bool = False) -> dict[str, Any]:
        """The task's metrics (see :mod:`astrofm.downstream.metrics`)."""
        if self.task == "classification":
            return M.classification_metrics(y_true, y_pred, labels=getattr(self, "classes_", None))
        return M.redshift_metrics(y_true, y_pred) if redshift else M.regression_metrics(y_true, y_pred)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class KNNProbe(_Probe):
    """k-nearest-neighbour probe (defaults: AstroCLIP's StandardScaler, k = 64, distance weights).

    ``k`` is capped at the number of training samples.
    """

    def __init__(
        self, task: Task = "regression", k: int = 64, weights: str = "distance", standardize: bool = True
    ) -> None:
        self.task = task
        self.k = k
        self.weights = weights
        self.standardize = standardize

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

        cls = KNeighborsRegressor if self.task == "regression" else KNeighborsClassifier
        self.model_ = _pipeline(cls(n_neighbors=min(self.k, len(X)), weights=self.weights), self.standardize)
        self.model_.fit(X, y)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(X)


class LinearProbe(_Probe):
    """Ridge regression (``alpha``) or multinomial logistic regression (``C``) on standardized embeddings."""

    def __init__(
        self,
        task: Task = "regression",
        alpha: float = 1.0,
        C: float = 1.0,
        max_iter: int = 2000,
        standardize: bool = True,
    ) -> None:
        self.task = task
        self.alpha = alpha
        self.C = C
        self.max_iter = max_iter
        self.standardize = standardize

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        from sklearn.dummy import DummyClassifier
        from sklearn.linear_model import LogisticRegression, Ridge

        if self.task == "regression":
            model: Any = Ridge(alpha=self.alpha)
        elif len(self.classes_) < 2:
            model = DummyClassifier(
                strategy="most_frequent"
            )  # one class seen: logistic regression cannot fit
        else:
            model = LogisticRegression(C=self.C, max_iter=self.max_iter)
        self.model_ = _pipeline(model, self.standardize)
        self.model_.fit(X, y)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(X)


class MLPProbe(_Probe):
    """A small MLP (``hidden`` widths, ReLU) trained with AdamW and early stopping.

    ``val_fraction`` of the training set (at least one sample) is held out; training stops after
    ``patience`` epochs without improvement of the held-out loss and keeps the best weights.
    Regression targets are standardized internally.
    """

    def __init__(
        self,
        task: Task = "regression",
        hidden: Sequence[int] = (64, 64),
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        max_epochs: int = 200,
        patience: int = 10,
        val_fraction: float = 0.1,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.task = task
        self.hidden = hidden
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.seed = seed
        self.device = device

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        import torch
        from sklearn.preprocessing import StandardScaler

        self.scaler_ = StandardScaler().fit(X)
        if self.task == "regression":
            self.y_mean_, self.y_std_ = float(y.mean()), float(y.std()) or 1.0
            target = torch.as_tensor((y - self.y_mean_) / self.y_std_, dtype=torch.float32)[:, None]
            n_out = 1
        else:
            target = torch.as_tensor(np.searchsorted(self.classes_, y), dtype=torch.long)
            n_out = len(self.classes_)
        inputs = torch.as_tensor(self.scaler_.transform(X), dtype=torch.float32)
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(X))
        n_val = max(1, round(self.val_fraction * len(X))) if len(X) >= 5 else 0
        val, train = order[:n_val], order[n_val:]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = _mlp(X.shape[1], self.hidden, n_out).to(self.device)
        loss_fn = torch.nn.MSELoss() if self.task == "regression" else torch.nn.CrossEntropyLoss()
        optimizer = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        x_train, y_train = inputs[train].to(self.device), target[train].to(self.device)
        x_val, y_val = (
            (inputs[val].to(self.device), target[val].to(self.device)) if n_val else (x_train, y_train)
        )
        best, best_state, stale, epochs = float("inf"), None, 0, 0
        n_batches = max(1, -(-len(train) // self.batch_size))
        while epochs < self.max_epochs and stale < self.patience:
            epochs += 1
            net.train()
            for batch in np.array_split(rng.permutation(len(train)), n_batches):
                optimizer.zero_grad()
                loss = loss_fn(net(x_train[batch]), y_train[batch])
                loss.backward()
                optimizer.step()
            net.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(net(x_val), y_val))
            if val_loss < best - 1e-6:
                best, stale = val_loss, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
        if best_state is not None:
            net.load_state_dict(best_state)
        self.net_ = net.eval()
        self.n_epochs_ = epochs
        log.debug("MLP probe stopped after %d epochs (best held-out loss %.4g)", self.n_epochs_, best)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        import torch

        inputs = torch.as_tensor(self.scaler_.transform(X), dtype=torch.float32, device=self.device)
        with torch.no_grad():
            out = self.net_(inputs).cpu().numpy()
        if self.task == "regression":
            return out[:, 0] * self.y_std_ + self.y_mean_
        return self.classes_[out.argmax(axis=1)]


PROBES: dict[str, type[_Probe]] = {"knn": KNNProbe, "linear": LinearProbe, "mlp": MLPProbe}


def make_probe(kind: str, task: Task = "regression", **params: Any) -> _Probe:
    """A probe by name (``knn``, ``linear``, ``mlp``) with its parameters."""
    if kind not in PROBES:
        raise ConfigError(f"probe must be one of {sorted(PROBES)}, not {kind!r}")
    return PROBES[kind](task=task, **params)


def cross_validate(
    probe: _Probe, X: Any, y: Any, *, n_splits: int = 5, seed: int = 0, redshift: bool = False
) -> dict[str, Any]:
    """K-fold (stratified for classification) cross-validation: per-fold metrics, mean and std."""
    from sklearn.model_selection import KFold, StratifiedKFold

    X = check_vectors(X, where="probe input", field="X")
    y = check_targets(y, len(X), where="probe input", field="y", numeric=probe.task == "regression")
    splitter = (StratifiedKFold if probe.task == "classification" else KFold)(
        n_splits, shuffle=True, random_state=seed
    )
    folds = []
    for train, test in splitter.split(X, y):
        model = clone(probe).fit(X[train], y[train])
        folds.append(model.evaluate(y[test], model.predict(X[test]), redshift=redshift))
    return {"folds": folds, **_summary(folds)}


def label_fraction_curve(
    probe: _Probe,
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    *,
    fractions: Sequence[float] = LABEL_FRACTIONS,
    seeds: Sequence[int] = (0, 1, 2),
    redshift: bool = False,
) -> list[dict[str, Any]]:
    """Test metrics when the probe sees only a fraction of the training labels (mean ± std over seeds).

    Each seed draws its own subset (for classification, one example of every class first) and, for
    seeded probes, its own initialization. Returns one dict per fraction: ``fraction``, ``n_labels``,
    ``mean`` and ``std`` of every scalar metric, and the per-seed ``runs``.
    """
    X_train = check_vectors(X_train, where="probe input", field="X_train")
    X_test = check_vectors(X_test, where="probe input", field="X_test", dim=X_train.shape[1])
    numeric = probe.task == "regression"
    y_train = check_targets(y_train, len(X_train), where="probe input", field="y_train", numeric=numeric)
    y_test = check_targets(y_test, len(X_test), where="probe input", field="y_test", numeric=numeric)
    curve = []
    for fraction in fractions:
        if not 0 < fraction <= 1:
            raise ConfigError(f"label fractions must lie in (0, 1], not {fraction}")
        n_labels = max(2, round(fraction * len(X_train)))
        runs = []
        for seed in seeds:
            rows = _subsample(y_train, n_labels, np.random.default_rng(seed), stratify=not numeric)
            model = clone(probe)
            if "seed" in model.get_params():
                model.set_params(seed=seed)
            model.fit(X_train[rows], y_train[rows])
            runs.append(model.evaluate(y_test, model.predict(X_test), redshift=redshift))
        # the labels fitted: at least one per class, at most all (the same count for every seed)
        curve.append({"fraction": float(fraction), "n_labels": len(rows), **_summary(runs), "runs": runs})
        log.info("label fraction %.2f (%d labels): %s", fraction, len(rows), curve[-1]["mean"])
    return curve


def _subsample(y: np.ndarray, n: int, rng: np.random.Generator, *, stratify: bool) -> np.ndarray:
    """``n`` random rows; when ``stratify``, one row of every class first."""
    if n >= len(y):
        return np.arange(len(y))
    order = rng.permutation(len(y))
    if not stratify:
        return np.sort(order[:n])
    _, first = np.unique(y[order], return_index=True)
    chosen = order[first]
    rest = np.setdiff1d(order, chosen, assume_unique=True)
    rest = rest[rng.permutation(len(rest))][: max(0, n - len(chosen))]
    return np.sort(np.concatenate([chosen, rest]))


def _summary(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    keys = [k for k, v in runs[0].items() if isinstance(v, float)]
    return {
        "mean": {k: float(np.mean([r[k] for r in runs])) for k in keys},
        "std": {k: float(np.std([r[k] for r in runs])) for k in keys},
    }


def _pipeline(model: Any, standardize: bool) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), model) if standardize else make_pipeline(model)


def _mlp(n_in: int, hidden: Sequence[int], n_out: int) -> Any:
    import torch

    layers: list[torch.nn.Module] = []
    for width in hidden:
        layers += [torch.nn.Linear(n_in, width), torch.nn.ReLU()]
        n_in = width
    layers.append(torch.nn.Linear(n_in, n_out))
    return torch.nn.Sequential(*layers)
