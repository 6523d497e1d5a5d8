"""Generation with an ``ARModel``: continue a partial sequence token by token (greedy regression).

``generate(model, batch, "spectrum", prefix_tokens=10)`` predicts the spectrum windows after the
first 10 real ones, conditioned on them and on every modality before the spectrum in the model's
order (e.g. the image); ``prefix_tokens=0`` predicts a whole spectrum from the image. The target's
positions (e.g. the wavelengths of the windows) come from the batch; its values beyond the prefix
are ignored. Each predicted token is fed back as the next input. Only real tokens are generated: a
column that is no token (e.g. a spectrum window without a good pixel) is skipped, as in training.

With ``use_cache=True`` the keys and values of earlier tokens are kept per block (a KV cache) and
each step runs one token through the model; without it every step reruns the whole sequence.
Rows are right-aligned (context padding on the left, masked inside attention) so that all rows
take their steps together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from astrofm.ar.model import ARModel
from astrofm.ar.tokenizers import Tokens
from astrofm.data.batch import Batch
from astrofm.errors import ConfigError
from astrofm.nn import eval_mode


@dataclass
class Generated:
    """A target modality's tokens: the given prefix, then the generated ones (R objects that have it)."""

    values: Tensor  # (R, L, F)
    #: (R, L) bool, True = generated (else given).
    generated: Tensor
    #: (R, L) bool, the target's real tokens in the batch.
    mask: Tensor
    #: (R,) rows of the batch.
    index: Tensor
    #: (R,) bool, False where a row had nothing to condition on (its values are NaN).
    conditioned: Tensor


class KVCache:
    """Keys and values (N, H, L, Dh) of the tokens seen so far, one entry per block."""

    def __init__(self, depth: int) -> None:
        self.keys: list[Tensor | None] = [None] * depth
        self.values: list[Tensor | None] = [None] * depth

    def layer(self, i: int) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """The update function of block ``i``: appends new keys/values and returns all of them."""

        def update(k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
            old_k, old_v = self.keys[i], self.values[i]
            if old_k is not None and old_v is not None:
                k, v = torch.cat([old_k, k], dim=2), torch.cat([old_v, v], dim=2)
            self.keys[i], self.values[i] = k, v
            return k, v

        return update


def _run(model: ARModel, x: Tensor, valid: Tensor, cache: KVCache | None) -> Tensor:
    """Right-aligned inputs (R, Lq, D) after ``valid`` (R, Lk) keys -> final-normed state of the last token."""
    lq, lk = x.shape[1], valid.shape[1]
    own = torch.zeros(lq, lk, dtype=torch.bool, device=x.device)
    own[:, lk - lq:] = torch.eye(lq, dtype=torch.bool, device=x.device)  # keeps all-padding rows finite
    mask = (valid[:, None, None, :] | own) if lq > 1 else valid[:, None, None, :]
    for i, block in enumerate(model.trunk.blocks):
        x = block(x, mask, causal=lq > 1, cache=cache.layer(i) if cache is not None else None)
    return model.trunk.norm(x[:, -1])


def _context(model: ARModel, batch: Batch, modality: str, prefix_tokens: int
             ) -> tuple[Tokens, Tensor, Tensor, Tensor]:
    """Target tokens, the right-aligned context (R, S, D), its valid mask (R, S), each row's first new column."""
    position = model.modalities.index(modality)
    tokens = model.tokenize(batch, model.modalities[: position + 1])
    target = tokens[modality]
    seen = target.mask.long().cumsum(dim=1)
    enough = seen[:, -1] >= prefix_tokens
    start = torch.where(enough, (seen < prefix_tokens).sum(dim=1) + int(prefix_tokens > 0), seen.shape[1])
    tokens[modality] = Tokens(target.values, target.mask & (seen <= prefix_tokens), target.weight, target.position)
    sequence = model.sequence(batch, tokens)
    rows = batch.modalities[modality].index.to(sequence.x.device)
    x, real = sequence.x[rows], sequence.lengths[rows]
    length = x.shape[1]
    columns = torch.arange(length, device=x.device)
    shift = (columns[None, :] + real[:, None]) % length  # the real tokens (packed first) move to the end
    x = x.gather(1, shift[..., None].expand_as(x))
    return target, x, columns[None, :] >= length - real[:, None], start


@torch.no_grad()
def generate(model: ARModel, batch: Batch, modality: str, prefix_tokens: int = 0, *, use_cache: bool = True
             ) -> Generated:
    """Predict ``modality``'s tokens after its first ``prefix_tokens`` real ones (see the module doc)."""
    if modality not in model.modalities or modality not in batch.modalities:
        raise ConfigError(f"cannot generate {modality!r}: the model has {list(model.modalities)}, "
                          f"the batch {list(batch.modalities)}")
    with eval_mode(model):
        target, context, valid, start = _context(model, batch, modality, prefix_tokens)
        tokenizer = model.tokenizer(modality)
        n_rows, n_columns = target.mask.shape
        columns = torch.arange(n_columns, device=start.device)
        todo = target.mask & (columns >= start[:, None])  # the real tokens after the prefix, not the gaps
        order = torch.where(todo, columns, n_columns).sort(dim=1).values  # per row: their columns first
        n_todo = todo.sum(dim=1)
        steps = int(n_todo.max()) if n_rows else 0
        values = target.values.clone()
        generated = torch.zeros_like(target.mask)
        cache = KVCache(len(model.trunk.blocks)) if use_cache else None
        state = _run(model, context, valid, cache)
        inputs, keys = context, valid
        rows = torch.arange(n_rows, device=start.device)
        for step in range(steps):
            inside = step < n_todo
            predicted = tokenizer.predict(state).to(values.dtype)
            at = order[:, step].clamp(max=n_columns - 1)
            values[rows[inside], at[inside]] = predicted[inside]
            generated[rows[inside], at[inside]] = True
            if step == steps - 1:
                break
            new = tokenizer.embed(predicted, target.position[rows, at])[:, None].to(context.dtype)
            keys = torch.cat([keys, torch.ones_like(keys[:, :1])], dim=1)
            if cache is not None:
                state = _run(model, new, keys, cache)
            else:
                inputs = torch.cat([inputs, new], dim=1)
                state = _run(model, inputs, keys, None)
    conditioned = valid.any(dim=1)
    values[~conditioned] = torch.nan
    index = batch.modalities[modality].index.to(values.device)
    return Generated(values, generated, target.mask, index, conditioned)
