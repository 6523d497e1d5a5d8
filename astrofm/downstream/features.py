"""Interpretable features of embeddings: a sparse autoencoder (SAE) with an overcomplete dictionary.

The SAE writes each embedding as a sparse, non-negative combination of dictionary directions::

    a = TopK(ReLU(W_enc (x̃ − b_dec) + b_enc))      x̂ = W_dec a + b_dec,    x̃ = x / scale

with unit-norm decoder columns (the dictionary, :attr:`SparseAutoencoder.dictionary`) and sparsity
from keeping the ``k`` largest activations (``sparsity='topk'``) or an L1 penalty
(``sparsity='l1'``). ``scale`` makes the mean squared norm of the centred training embeddings D.

Per feature :meth:`SparseAutoencoder.feature_report` gives its firing frequency, mean activation and
the fraction of the embeddings' variance it reconstructs (the increase of the squared error when
it is removed). :func:`correlate_features` ranks (feature, catalog column) pairs by Spearman ρ;
:meth:`SparseAutoencoder.steer` adds or removes a feature from query vectors for a new search.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from astrofm.downstream.validation import check_vectors
from astrofm.errors import ConfigError, DataFormatError
from astrofm.utils.atomic import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

SPARSITY = ("topk", "l1")
WEIGHTS_FILE = "sae.safetensors"
CONFIG_FILE = "sae.json"
_PARAMS = ("n_features", "sparsity", "k", "l1", "epochs", "lr", "batch_size", "seed", "device")


class SparseAutoencoder:
    """Sparse autoencoder on (n, D) embeddings; scikit-learn style ``fit`` / ``transform``.

    ``n_features`` defaults to 4·D. Training is Adam over ``epochs`` passes of shuffled batches,
    deterministic given ``seed`` on CPU.
    """

    def __init__(
        self,
        n_features: int | None = None,
        *,
        sparsity: str = "topk",
        k: int = 16,
        l1: float = 1e-3,
        epochs: int = 50,
        lr: float = 2e-3,
        batch_size: int = 256,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        if sparsity not in SPARSITY:
            raise ConfigError(f"sparsity must be one of {SPARSITY}, not {sparsity!r}")
        if n_features is not None and n_features < 1:
            raise ConfigError(f"n_features must be positive, not {n_features}")
        self.n_features = n_features
        self.sparsity = sparsity
        self.k = k
        self.l1 = l1
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.device = device

    def dictionary_size(self, dim: int) -> int:
        """Features learnt from ``dim``-dimensional embeddings: ``n_features``, by default 4·D."""
        return self.n_features if self.n_features is not None else 4 * dim

    # -- training -------------------------------------------------------------------------------
    def fit(self, X: Any) -> SparseAutoencoder:
        import torch

        X = check_vectors(X, where="sparse autoencoder input", field="X")
        if len(X) < 2:
            raise ConfigError("a sparse autoencoder needs at least 2 embeddings")
        n, dim = X.shape
        n_features = self.dictionary_size(dim)
        if self.sparsity == "topk" and not 1 <= self.k <= n_features:
            raise ConfigError(f"k must lie in [1, {n_features}], not {self.k}")
        centred = X - X.mean(axis=0)
        self.scale_ = float(np.sqrt(np.mean(np.sum(centred.astype(np.float64) ** 2, axis=1)) / dim)) or 1.0
        self.n_features_in_ = dim
        data = torch.as_tensor(X / self.scale_, dtype=torch.float32)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            decoder = torch.nn.functional.normalize(torch.randn(dim, n_features), dim=0)
        self.params_ = {
            "W_enc": decoder.T.clone().contiguous(),
            "b_enc": torch.zeros(n_features),
            "W_dec": decoder,
            "b_dec": data.mean(dim=0),
        }
        params = {name: p.to(self.device).requires_grad_(True) for name, p in self.params_.items()}
        optimizer = torch.optim.Adam(params.values(), lr=self.lr)
        rng = np.random.default_rng(self.seed)
        n_batches = max(1, -(-n // self.batch_size))
        for _ in tqdm(
            range(self.epochs), desc="training sparse autoencoder", unit="epoch", disable=n < 50_000
        ):
            for batch in np.array_split(rng.permutation(n), n_batches):
                x = data[batch].to(self.device)
                acts = _encode(params, x, self.sparsity, self.k)
                loss = ((_decode(params, acts) - x) ** 2).sum(dim=1).mean()
                if self.sparsity == "l1":
                    loss = loss + self.l1 * acts.abs().sum(dim=1).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                with torch.no_grad():  # keep the dictionary on the unit sphere
                    params["W_dec"].div_(params["W_dec"].norm(dim=0, keepdim=True).clamp_min(1e-8))
        self.params_ = {name: p.detach().cpu() for name, p in params.items()}
        log.info("sparse autoencoder: %d features, reconstruction R² %.3f", n_features, self.score(X))
        return self

    # -- using ----------------------------------------------------------------------------------
    @property
    def dictionary(self) -> np.ndarray:
        """(n_features, D) unit-norm feature directions in embedding space."""
        return self._fitted()["W_dec"].T.numpy().copy()

    def transform(self, X: Any, *, batch_size: int = 8192) -> np.ndarray:
        """Feature activations (n, n_features), float32; batch-size independent."""
        import torch

        params = self._fitted()
        X = check_vectors(X, where="sparse autoencoder input", field="X", dim=self.n_features_in_)
        out = np.empty((len(X), params["W_dec"].shape[1]), np.float32)
        with torch.no_grad():
            for lo in range(0, len(X), batch_size):
                x = torch.as_tensor(X[lo : lo + batch_size] / self.scale_, dtype=torch.float32)
                out[lo : lo + batch_size] = _encode(params, x, self.sparsity, self.k).numpy()
        return out

    def inverse_transform(self, activations: Any) -> np.ndarray:
        """Embeddings (n, D) reconstructed from activations."""
        import torch

        with torch.no_grad():
            acts = torch.as_tensor(np.asarray(activations, np.float32))
            return (_decode(self._fitted(), acts).numpy() * self.scale_).astype(np.float32)

    def score(self, X: Any) -> float:
        """Reconstruction R² of ``X`` (1 − squared error / total variance)."""
        X = check_vectors(X, where="sparse autoencoder input", field="X", dim=self.n_features_in_)
        error = np.sum((self.inverse_transform(self.transform(X)) - X) ** 2, dtype=np.float64)
        return float(1.0 - error / max(np.sum((X - X.mean(axis=0)) ** 2, dtype=np.float64), 1e-30))

    def feature_report(self, X: Any, *, batch_size: int = 8192) -> Any:
        """An astropy Table, one row per feature: frequency (fraction of objects where it fires),
        mean_activation (when firing), max_activation, and explained_variance (the increase of the
        squared reconstruction error when the feature is zeroed, over the total variance)."""
        from astropy.table import Table

        X = check_vectors(X, where="sparse autoencoder input", field="X", dim=self.n_features_in_)
        dictionary = self.dictionary * self.scale_  # (F, D) in input units
        n_features = len(dictionary)
        fires, total, peak, loss = (np.zeros(n_features) for _ in range(4))
        for lo in range(0, len(X), batch_size):
            x = X[lo : lo + batch_size].astype(np.float64)
            acts = self.transform(x).astype(np.float64)
            residual = x - self.inverse_transform(acts)
            fires += (acts > 0).sum(axis=0)
            total += acts.sum(axis=0)
            peak = np.maximum(peak, acts.max(axis=0))
            # |r + a d|² − |r|² = 2 a (d · r) + a² |d|², summed over objects
            loss += np.sum(
                2 * acts * (residual @ dictionary.T) + acts**2 * np.sum(dictionary**2, axis=1), axis=0
            )
        variance = max(float(np.sum((X - X.mean(axis=0)) ** 2, dtype=np.float64)), 1e-30)
        return Table(
            {
                "feature": np.arange(n_features),
                "frequency": fires / len(X),
                "mean_activation": np.divide(total, fires, out=np.zeros(n_features), where=fires > 0),
                "max_activation": peak,
                "explained_variance": loss / variance,
            }
        )

    def steer(
        self,
        vectors: Any,
        feature: int,
        *,
        delta: float | None = None,
        remove: bool = False,
        renormalize: bool = False,
    ) -> np.ndarray:
        """Query vectors with one feature added (``delta``, in activation units) or removed.

        ``remove`` subtracts the feature's own contribution to each vector; ``renormalize`` puts the
        result back on the unit sphere (for L2-normalized stores).
        """
        X = check_vectors(vectors, where="steered query", field="vectors", dim=self.n_features_in_)
        if not 0 <= feature < len(self.dictionary):
            raise ConfigError(f"feature must lie in [0, {len(self.dictionary)}), not {feature}")
        if (delta is None) == (not remove):
            raise ConfigError("give either delta or remove=True")
        shift = -self.transform(X)[:, feature] if remove else np.full(len(X), float(delta))
        out = X + shift[:, None] * self.dictionary[feature] * self.scale_
        if renormalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)

    # -- saving ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``sae.safetensors`` (weights) and ``sae.json`` (parameters) into folder ``path``."""
        from safetensors.torch import save_file

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / WEIGHTS_FILE, suffix=".safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in self._fitted().items()}, str(tmp))
        config = {
            "format": "astrofm-sae",
            "format_version": 1,
            "params": {p: getattr(self, p) for p in _PARAMS},
            "scale": self.scale_,
            "n_features_in": self.n_features_in_,
        }
        atomic_write_text(folder / CONFIG_FILE, json.dumps(config, indent=2))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> SparseAutoencoder:
        from safetensors.torch import load_file

        folder = Path(path)
        try:
            config = json.loads((folder / CONFIG_FILE).read_text())
            weights = load_file(str(folder / WEIGHTS_FILE))
        except (OSError, json.JSONDecodeError) as error:
            raise DataFormatError(folder, f"cannot read a saved sparse autoencoder ({error})") from None
        missing = {"W_enc", "b_enc", "W_dec", "b_dec"} - set(weights)
        if missing or config.get("format") != "astrofm-sae":
            raise DataFormatError(
                folder,
                "not a saved sparse autoencoder",
                field=WEIGHTS_FILE,
                expected="astrofm-sae weights W_enc, b_enc, W_dec, b_dec",
                found=sorted(weights),
            )
        sae = cls(**{p: v for p, v in config["params"].items() if p in _PARAMS})
        sae.params_, sae.scale_, sae.n_features_in_ = weights, config["scale"], config["n_features_in"]
        return sae

    def _fitted(self) -> dict[str, Any]:
        if not hasattr(self, "params_"):
            raise ConfigError("fit the sparse autoencoder first")
        return self.params_


def top_activating(activations: np.ndarray, feature: int, n: int) -> np.ndarray:
    """Rows of the ``n`` objects where ``feature`` fires most (strongest first; only rows where it fires)."""
    column = np.asarray(activations)[:, feature]
    order = np.lexsort((np.arange(len(column)), -column))[:n]
    return order[column[order] > 0]


def correlate_features(
    activations: np.ndarray, columns: Mapping[str, Any], *, min_frequency: float = 0.0
) -> Any:
    """Spearman ρ of every feature with every catalog column, strongest first (an astropy Table).

    ``columns`` maps names to numeric arrays aligned with the rows of ``activations`` (NaN = unknown);
    features firing on fewer than ``min_frequency`` of the objects are skipped.
    """
    from astropy.table import Table
    from scipy.stats import rankdata

    activations = np.asarray(activations, np.float64)
    keep = np.flatnonzero((activations > 0).mean(axis=0) >= max(min_frequency, 1e-12))
    rows: dict[str, list[Any]] = {"feature": [], "column": [], "spearman_rho": [], "n": []}
    for name, values in columns.items():
        values = np.asarray(values, np.float64)
        if values.shape != (len(activations),):
            raise DataFormatError(
                None,
                "catalog column not aligned with the embeddings",
                field=name,
                expected=(len(activations),),
                found=values.shape,
            )
        known = np.isfinite(values)
        if known.sum() < 3 or not len(keep):
            continue
        a = _standardize(rankdata(activations[known][:, keep], axis=0))
        v = _standardize(rankdata(values[known])[:, None])
        rho = (a * v).mean(axis=0)
        rows["feature"] += keep.tolist()
        rows["column"] += [name] * len(keep)
        rows["spearman_rho"] += rho.tolist()
        rows["n"] += [int(known.sum())] * len(keep)
    table = Table(rows, dtype=[int, str, float, int])
    order = np.argsort(-np.abs(np.asarray(table["spearman_rho"])), kind="stable")
    return table[order]


def _standardize(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    return np.divide(x - x.mean(axis=0), std, out=np.zeros_like(x), where=std > 0)


def _encode(params: Mapping[str, Any], x: Any, sparsity: str, k: int) -> Any:
    import torch

    pre = torch.relu((x - params["b_dec"]) @ params["W_enc"].T + params["b_enc"])
    if sparsity == "l1":
        return pre
    values, indices = torch.topk(pre, k, dim=1)
    return torch.zeros_like(pre).scatter(1, indices, values)


def _decode(params: Mapping[str, Any], acts: Any) -> Any:
    return acts @ params["W_dec"].T + params["b_dec"]
