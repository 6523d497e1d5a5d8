"""Embedding at scale: stream a dataset through a model into an embedding store, resumably.

``embed_to_store(model, source, store_path)`` reads any block source (an MMU
dataset, a cross-match, a Parquet/hub copy) in order, preprocesses it with
the model's own transforms, embeds it batch by batch on the model's device,
and appends the vectors of every present modality to the store. After each
batch the loader position is saved beside the store, so an interrupted run
continues where it stopped; ids already stored are never written twice.
Memory stays flat: at most a few blocks and one batch are held at a time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from astrofm.data.modalities import Sample
from astrofm.data.sources import BlockSource
from astrofm.data.streaming import StreamingDataset, StreamingLoader
from astrofm.errors import ConfigError
from astrofm.utils.atomic import atomic_write_text
from astrofm.utils.precision import compute_dtype

log = logging.getLogger(__name__)

STATE_FILE = "embed_state.json"


def samples_from_arrays(arrays: Mapping[str, Mapping[str, Any]], object_ids: Sequence[str] | None = None
                        ) -> list[Sample]:
    """Samples from arrays with a leading object axis, e.g. ``{"spectrum": {"flux": (N, L), "lambda": ...}}``.

    Lets ``model.embed(samples_from_arrays(...))`` embed tensors or arrays that do not live in files.
    """
    sizes = {len(v) for fields in arrays.values() for v in fields.values()}
    if len(sizes) != 1:
        raise ConfigError(f"all arrays need the same number of objects, got lengths {sorted(sizes)}")
    n = sizes.pop()
    ids = [str(i) for i in (object_ids if object_ids is not None else range(n))]
    if len(ids) != n:
        raise ConfigError(f"{len(ids)} object_ids for {n} objects")
    samples: list[Sample] = [{"object_id": oid} for oid in ids]
    for modality, fields in arrays.items():
        for key, values in fields.items():
            values = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
            for i in range(n):
                samples[i].setdefault(modality, {})[key] = values[i]
    return samples


def embed_to_store(
    model: Any,
    source: BlockSource,
    store_path: str | Path,
    *,
    model_name: str = "astrofm-model",
    model_version: str | None = None,
    modalities: Sequence[str] | None = None,
    batch_size: int = 256,
    num_workers: int = 0,
    block_size: int = 512,
    progress: bool = True,
) -> Path:
    """Embed every object of ``source`` into the store at ``store_path`` (created or resumed).

    ``model`` is an ``AstroFM`` (or any model with ``modalities``,
    ``embed_dim``, a ``transform(sample, rng)`` and ``embed(batch, modalities)``).
    Returns the store path. The model runs in eval mode; vectors are written
    for each object and modality it has (absent modalities, and a modality without any real token, e.g. a
    spectrum whose pixels are all bad, are skipped). A run that asks for other modalities, or reads another
    source, than the store's last run makes a new pass, which adds only the ids the store lacks. The dtype the
    model computes in (its weights', or autocast's) is recorded in the store; resuming a store with another one
    is an error, so that one store never mixes float32 and bf16 vectors.
    """
    from astrofm.downstream.store import EmbeddingStore

    store_path = Path(store_path)
    names = list(modalities or model.modalities)
    unknown = [m for m in names if m not in model.modalities]
    if unknown or not names:
        raise ConfigError(f"{unknown or 'no modalities'}: not among the model's modalities {list(model.modalities)}")
    stream = StreamingDataset(source, batch_size=batch_size, shuffle=False, block_size=block_size,
                              transform=model.transform, augment=False, seed=0)
    loader = StreamingLoader(stream, num_workers=num_workers)
    total = len(stream) if all(r.length is not None for r in stream._refs) else None
    weights = next(iter(model.parameters()), None) if isinstance(model, torch.nn.Module) else None
    precision = (str(compute_dtype(weights.device, weights.dtype)).removeprefix("torch.") if weights is not None
                 else "unknown")
    store = EmbeddingStore.create(store_path, model=model_name, model_version=model_version, exist_ok=True,
                                  metadata={"source": getattr(source, "name", str(source)), "precision": precision})
    stored_precision = store.metadata.get("precision", precision)
    if stored_precision != precision:
        store.close()
        raise ConfigError(f"{store_path}: the store holds vectors computed in {stored_precision}, this run computes "
                          f"in {precision} (the model's dtype or autocast, e.g. astrofm embed --precision); embed "
                          "into a new store, or with the store's precision")
    state_path = store_path / STATE_FILE
    request = {"modalities": sorted(names), "source": getattr(source, "name", str(source))}
    done = 0
    if state_path.exists():
        saved = json.loads(state_path.read_text())
        if saved.get("request") != request:  # ids already stored are skipped, so a new pass adds only what is new
            log.info("%s: stored for %s, now asked for %s; embedding from the start", store_path,
                     saved.get("request"), request)
        elif saved.get("finished"):
            log.info("%s: already complete (%d objects)", store_path, saved.get("objects", 0))
            store.close()
            return store_path
        else:
            loader.load_state_dict(saved["loader"])
            done = int(saved.get("objects", 0))
            log.info("%s: resuming after %d objects", store_path, done)
    try:
        for name in names:
            store.add_modality(name, model.embed_dim, capacity=total or 0)
        with tqdm(total=total, initial=done, unit="obj", desc=f"embedding {store_path.name}",
                  disable=not progress) as bar:
            for batch in loader:
                vectors = model.embed(batch, names)
                ids = np.asarray(batch.object_id)
                for name in names:
                    if name not in batch.modalities:
                        continue
                    vectors_np = vectors[name].float().cpu().numpy()
                    present = np.isfinite(vectors_np).all(axis=1)  # the modality, with a real token of it
                    store.append(name, ids[present], vectors_np[present], skip_existing=True)
                done += len(batch)
                atomic_write_text(state_path, json.dumps({"request": request, "loader": loader.state_dict(),
                                                          "objects": done}))
                bar.update(len(batch))
        atomic_write_text(state_path, json.dumps({"request": request, "finished": True, "objects": done}))
    finally:
        store.close()
    return store_path
