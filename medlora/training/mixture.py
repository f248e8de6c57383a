"""The training mixture: a treatment-heavy sample of the split, the targets that fill rarely filled sections drawn
more often, so the fill-or-empty decisions the model must learn are seen often enough (issue 26)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import Any

from ..common.schemas import LEFT_TO_THE_RULES, SECTION_NAMES


def target_of(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["messages"][-1]["content"])


def filled_sections(row: dict[str, Any]) -> list[str]:
    target = target_of(row)
    return [s for s in SECTION_NAMES if s not in LEFT_TO_THE_RULES and target.get(s)]


def fill_rates(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    treat = [r for r in rows if r["kind"] == "treatment"]
    filled = [set(filled_sections(r)) for r in treat]
    return {s: sum(s in f for f in filled) / max(len(treat), 1) for s in SECTION_NAMES}


def rare_weight(
    sections: Sequence[str], rates: dict[str, float], ref: float = 0.25, cap: float = 8.0
) -> float:
    """1 plus, per filled section, how much rarer than ``ref`` it is filled (capped): a target filling
    follow_up (1.7%) weighs far more than one filling patient_education (77%) only."""
    return 1.0 + sum(min(cap, ref / max(rates.get(s, 1.0), 1e-3)) for s in sections)


def mixture(
    rows: Sequence[dict[str, Any]], limit: int, treatment_share: float, rare_boost: bool, seed: int = 0
) -> list[dict[str, Any]]:
    """``limit`` rows: ``treatment_share`` of them treatment examples (the rest QA, a seeded sample), the
    abstaining ones at their share of the split's treatment examples, the others drawn without replacement with
    ``rare_weight`` (``rare_boost``) or uniformly. Kept in file order."""
    rng = random.Random(f"{seed}-mixture")
    qa = [i for i, r in enumerate(rows) if r["kind"] != "treatment"]
    treat = [i for i, r in enumerate(rows) if r["kind"] == "treatment"]
    n_treat = min(len(treat), round(limit * treatment_share))
    n_qa = min(len(qa), limit - n_treat)
    abstaining = [i for i in treat if not filled_sections(rows[i])]
    content = [i for i in treat if filled_sections(rows[i])]
    n_abstain = min(len(abstaining), round(n_treat * len(abstaining) / max(len(treat), 1)))
    rates = fill_rates([rows[i] for i in treat])

    def weighted(pool: list[int], n: int, weight: Callable[[int], float]) -> list[int]:
        # Efraimidis-Spirakis: the n largest u^(1/w) are a weighted sample without replacement.
        keys = sorted(pool, key=lambda i: rng.random() ** (1.0 / weight(i)), reverse=True)
        return keys[:n]

    pick = weighted(
        content,
        n_treat - n_abstain,
        (lambda i: rare_weight(filled_sections(rows[i]), rates)) if rare_boost else (lambda i: 1.0),
    )
    pick += rng.sample(abstaining, n_abstain) + rng.sample(qa, n_qa)
    return [rows[i] for i in sorted(pick)]
