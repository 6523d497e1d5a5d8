"""Astronomaly-style active learning: a person's relevance labels re-rank the anomaly candidates.

The loop shows the top-ranked unlabelled objects (:meth:`ActiveLearner.suggest`); a person gives
each a relevance score from 0 (boring, e.g. an artefact) to 5 (very interesting)
(:meth:`ActiveLearner.label`); a random-forest regressor on the embeddings learns relevance from those
labels, and every object is re-ranked (:meth:`ActiveLearner.rank`) with Astronomaly's score
(Lochner & Bassett 2021)::

    score = anomaly · tanh(exp(d0) − 1 + arctanh(f_u)),   f_u = 0.1 + 0.85 · u / 5

where ``u`` is the predicted relevance (the given label for labelled objects) and ``d0`` the
Euclidean distance to the nearest labelled object divided by the mean of that distance over all
objects. Near the labels (d0 → 0) the score is anomaly · f_u; far from any label the predicted
relevance has no say and the score tends to the anomaly score. Without labels, score = anomaly.

The loop state (labels, parameters, a SHA-256 fingerprint of the embeddings and anomaly scores)
is saved as JSON; :func:`simulate_oracle` measures the loop with labels taken from a truth column.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.downstream.metrics import precision_at_k
from astrofm.downstream.search import exact_search
from astrofm.downstream.validation import Where, as_object_ids, check_vectors, read_format_json
from astrofm.errors import ConfigError, DataFormatError
from astrofm.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)

FORMAT = "astrofm-active-learning"
MAX_LABEL = 5.0


class ActiveLearner:
    """Active-learning loop over embeddings ``X`` (n, D) with ids and common-scale ``anomaly`` scores (n,)."""

    def __init__(
        self,
        X: Any,
        object_ids: Any,
        anomaly: Any,
        *,
        n_estimators: int = 100,
        seed: int = 0,
    ) -> None:
        self.object_ids = as_object_ids(object_ids, where="active learning")
        self.X = check_vectors(X, where="active learning", object_ids=self.object_ids, field="X")
        self.anomaly = np.asarray(anomaly, np.float64)
        if self.anomaly.shape != (len(self.X),) or not np.isfinite(self.anomaly).all():
            raise DataFormatError(
                None,
                "anomaly scores must be finite, one per object",
                field="anomaly",
                expected=(len(self.X),),
                found=self.anomaly.shape,
            )
        self.n_estimators = n_estimators
        self.seed = seed
        self._row = {oid: i for i, oid in enumerate(self.object_ids.tolist())}
        if len(self._row) != len(self.object_ids):
            raise DataFormatError(None, "object ids repeat", field="object_id")
        self.labels: dict[str, float] = {}
        self._scores: np.ndarray | None = None
        self._relevance: np.ndarray | None = None
        self._d0: np.ndarray | None = None

    # -- the loop -------------------------------------------------------------------------------
    def label(self, object_ids: Any, scores: Any, *, where: Where = "relevance labels") -> None:
        """Record relevance labels (0–5) for objects; a new label replaces an old one.

        ``where`` (the labels file, or a description) is named in the errors.
        """
        ids = as_object_ids(object_ids, where=where)
        values = np.asarray(scores, np.float64).reshape(-1)
        if len(values) != len(ids):
            raise DataFormatError(
                where, "one label per object_id", field="scores", expected=len(ids), found=len(values)
            )
        bad = ~np.isfinite(values) | (values < 0) | (values > MAX_LABEL)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFormatError(
                where,
                "relevance label out of range",
                object_id=str(ids[i]),
                field="score",
                expected="0 to 5",
                found=values[i],
            )
        unknown = [oid for oid in ids.tolist() if oid not in self._row]
        if unknown:
            raise DataFormatError(
                where,
                "labelled object not among the candidates",
                object_id=unknown[0],
                field="object_id",
                found=f"{len(unknown)} unknown ids",
            )
        self.labels.update(zip(ids.tolist(), values.tolist()))
        self._scores = None

    def suggest(self, n: int) -> np.ndarray:
        """The ``n`` top-ranked objects without a label (ids, best first)."""
        order = self._order()
        unlabelled = order[[self.object_ids[i] not in self.labels for i in order]]
        return self.object_ids[unlabelled[:n]]

    def scores(self) -> np.ndarray:
        """Final score of every object, in input order (the anomaly score while there are no labels)."""
        if self._scores is None:
            self._update()
        assert self._scores is not None
        return self._scores

    def rank(self) -> Any:
        """All objects, best first, as an astropy Table.

        Columns: rank, object_id, score, anomaly, relevance (predicted or given, NaN without labels),
        d0 (NaN without labels), label (NaN where unlabelled).
        """
        from astropy.table import Table

        order = self._order()
        scores = self.scores()
        labels = np.array([self.labels.get(oid, np.nan) for oid in self.object_ids.tolist()])
        nan = np.full(len(self.X), np.nan)
        relevance = self._relevance if self._relevance is not None else nan
        d0 = self._d0 if self._d0 is not None else nan
        return Table(
            {
                "rank": np.arange(1, len(order) + 1),
                "object_id": self.object_ids[order],
                "score": scores[order],
                "anomaly": self.anomaly[order],
                "relevance": relevance[order],
                "d0": d0[order],
                "label": labels[order],
            }
        )

    # -- state ----------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """SHA-256 of the ids, embeddings and anomaly scores the loop runs on."""
        digest = hashlib.sha256()
        digest.update("\n".join(self.object_ids.tolist()).encode())
        digest.update(np.ascontiguousarray(self.X).tobytes())
        digest.update(np.ascontiguousarray(self.anomaly).tobytes())
        return digest.hexdigest()

    def save(self, path: str | Path) -> Path:
        """Write the loop state (labels, parameters, fingerprint) as JSON, atomically."""
        path = Path(path)
        state = {
            "format": FORMAT,
            "format_version": 1,
            "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "fingerprint": self.fingerprint(),
            "n_objects": len(self.X),
            "params": {"n_estimators": self.n_estimators, "seed": self.seed},
            "labels": self.labels,
        }
        atomic_write_text(path, json.dumps(state, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path, X: Any, object_ids: Any, anomaly: Any) -> ActiveLearner:
        """Resume a saved loop on the same embeddings and anomaly scores (checked by fingerprint)."""
        path = Path(path)
        state = read_format_json(path, FORMAT, "an active-learning state file")
        learner = cls(X, object_ids, anomaly, **state["params"])
        if learner.fingerprint() != state["fingerprint"]:
            raise DataFormatError(
                path,
                "embeddings or anomaly scores differ from those the labels were given on",
                field="fingerprint",
                expected=state["fingerprint"],
                found=learner.fingerprint(),
            )
        if state["labels"]:
            learner.label(list(state["labels"]), list(state["labels"].values()), where=path)
        return learner

    # -- internals ------------------------------------------------------------------------------
    def _order(self) -> np.ndarray:
        scores = self.scores()
        return np.lexsort((np.arange(len(scores)), -scores))

    def _update(self) -> None:
        if not self.labels:
            self._scores, self._relevance, self._d0 = self.anomaly.copy(), None, None
            return
        from sklearn.ensemble import RandomForestRegressor

        rows = np.array([self._row[oid] for oid in self.labels])
        given = np.array(list(self.labels.values()))
        model = RandomForestRegressor(n_estimators=self.n_estimators, random_state=self.seed)
        model.fit(self.X[rows], given)
        relevance = np.clip(model.predict(self.X), 0.0, MAX_LABEL)
        relevance[rows] = given
        nearest, _ = exact_search(self.X, self.X[rows], 1, metric="l2")
        d0 = nearest[:, 0].astype(np.float64)
        d0 /= max(float(d0.mean()), 1e-12)
        f_u = 0.1 + 0.85 * relevance / MAX_LABEL
        self._scores = self.anomaly * np.tanh(np.expm1(d0) + np.arctanh(f_u))
        self._relevance, self._d0 = relevance, d0


def simulate_oracle(
    learner: ActiveLearner,
    relevant: Any,
    *,
    rounds: int = 5,
    per_round: int = 20,
    top_n: int | None = None,
    relevant_score: float = MAX_LABEL,
) -> list[dict[str, float]]:
    """Run the loop with an oracle that labels relevant objects ``relevant_score`` and others 0.

    ``relevant`` is a bool per object (e.g. a truth column). Returns the precision in the top ``top_n``
    (default: the number of relevant objects) before the first round and after each round.
    """
    relevant = np.asarray(relevant, bool)
    if relevant.shape != (len(learner.X),):
        raise DataFormatError(
            None,
            "one truth value per object",
            field="relevant",
            expected=(len(learner.X),),
            found=relevant.shape,
        )
    top_n = top_n or int(relevant.sum())
    if top_n < 1:
        raise ConfigError("the oracle needs at least one relevant object (or top_n)")
    truth = dict(zip(learner.object_ids.tolist(), relevant.tolist()))
    curve = [
        {"n_labels": len(learner.labels), "precision": precision_at_k(relevant, learner.scores(), top_n)}
    ]
    for _ in range(rounds):
        ids = learner.suggest(per_round)
        if len(ids) == 0:
            break
        learner.label(ids, [relevant_score if truth[oid] else 0.0 for oid in ids.tolist()])
        curve.append(
            {"n_labels": len(learner.labels), "precision": precision_at_k(relevant, learner.scores(), top_n)}
        )
        log.info(
            "active learning: %d labels, precision@%d = %.3f",
            curve[-1]["n_labels"],
            top_n,
            curve[-1]["precision"],
        )
    return curve
