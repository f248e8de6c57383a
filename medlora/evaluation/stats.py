"""The project's one bootstrap: resampled item indices drawn once and shared by every figure of a report (and by
both sides of a paired comparison), and the 95% percentile interval of a rate or a mean over them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """Resampled item indices, shape (n_boot, n); reuse one draw for paired comparisons on the same items."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n)) if n else np.zeros((n_boot, 0), dtype=np.int64)


def percentile_ci(samples: np.ndarray) -> list[float]:
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return [float(lo), float(hi)]


def ratio_ci(num: Any, den: Any, idx: np.ndarray) -> tuple[float | None, list[float] | None]:
    """sum(num) / sum(den) over items and its bootstrap 95% interval, ``idx`` from ``bootstrap_indices``.

    The project's one bootstrap of a rate: a mean is ``ratio_ci(values, ones)``, a rate over a subset of items is
    ``ratio_ci(hits * in_subset, in_subset)``. Resamples that hold no item of the subset are left out; no item
    at all gives (None, None)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if not len(den) or den.sum() == 0:
        return None, None
    sums_n, sums_d = num[idx].sum(axis=1), den[idx].sum(axis=1)
    ok = sums_d > 0
    return float(num.sum() / den.sum()), percentile_ci(sums_n[ok] / sums_d[ok])


def mean_ci(values: Sequence[float], idx: np.ndarray) -> list[float] | None:
    v = np.asarray(values, dtype=np.float64)
    return ratio_ci(v, np.ones(len(v)), idx)[1]
