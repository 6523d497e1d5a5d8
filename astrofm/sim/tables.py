"""Column tables (name -> array, axis 0 = object), the simulator's common currency, and row grouping."""

from __future__ import annotations

import numpy as np

Table = dict[str, np.ndarray]


def group_ranks(groups: np.ndarray) -> np.ndarray:
    """Position of each row among the rows of the same group, counted in row order (0, 1, 2, ...)."""
    groups = np.asarray(groups)
    order = np.argsort(groups, kind="stable")
    ranks = np.empty(len(groups), np.int64)
    ranks[order] = np.arange(len(groups)) - np.searchsorted(groups[order], groups[order], side="left")
    return ranks
