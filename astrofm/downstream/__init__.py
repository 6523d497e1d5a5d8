"""Downstream science on embeddings: store, probes, search, anomalies, SAE features, maps.

Everything here works on (N, D) embedding arrays keyed by object_id; it knows embeddings, not
encoders. Heavy libraries (torch, scikit-learn, faiss, umap) are imported on first use.
"""

from astrofm.downstream.active import ActiveLearner, simulate_oracle
from astrofm.downstream.ann import AnnIndex, choose_params
from astrofm.downstream.anomaly import AnomalyDetector, anomaly_scores
from astrofm.downstream.catalog import read_catalog
from astrofm.downstream.features import SparseAutoencoder, correlate_features, top_activating
from astrofm.downstream.maps import umap_projection
from astrofm.downstream.probes import (
    KNNProbe,
    LinearProbe,
    MLPProbe,
    cross_validate,
    label_fraction_curve,
    make_probe,
)
from astrofm.downstream.radius import RadiusSearch, angular_distance
from astrofm.downstream.search import ExactIndex, Neighbours, exact_search, search_store
from astrofm.downstream.store import EmbeddingStore

__all__ = [
    "ActiveLearner",
    "AnnIndex",
    "AnomalyDetector",
    "EmbeddingStore",
    "ExactIndex",
    "KNNProbe",
    "LinearProbe",
    "MLPProbe",
    "Neighbours",
    "RadiusSearch",
    "SparseAutoencoder",
    "angular_distance",
    "anomaly_scores",
    "choose_params",
    "correlate_features",
    "cross_validate",
    "exact_search",
    "label_fraction_curve",
    "make_probe",
    "read_catalog",
    "search_store",
    "simulate_oracle",
    "top_activating",
    "umap_projection",
]
