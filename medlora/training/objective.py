"""What the loss weighs and when training stops: batches padded with their decision weights (``PadCollator``),
class-balanced fill-or-empty decisions, and a wall-time budget.

Issue 26's diagnosis: a model trained on targets whose sections are empty 65-98% of the time reproduces those
base rates (P(empty) 0.89-0.96 whether the target fills the section or not). Weighting every decision token
alike (``--decision-weight``) makes the empty answer, the common one, weigh more still. ``balanced_weights``
gives each section's filled and empty decisions equal total weight over the training sample (scikit-learn's
``class_weight="balanced"``), so the cheapest way to lower the loss is to read the passages, not the base rate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ..common.schemas import WRITE_ORDER
from ..data.prompts import IGNORE_INDEX

log = logging.getLogger(__name__)

# A section filled in 1 target of 50 would otherwise weigh its filled decisions 25x: one token then outweighs
# the rest of its example. The cap keeps a single decision below about a tenth of a typical example's loss.
MAX_BALANCE = 8.0


def empty_token_ids(tokenizer: Any) -> set[int]:
    """Ids of the tokens that close a section's list at its decision (text starting with ``]``)."""
    special = set(getattr(tokenizer, "all_special_ids", []))
    return {
        i
        for i in range(len(tokenizer))
        if i not in special and tokenizer.decode([i], clean_up_tokenization_spaces=False).startswith("]")
    }


def fill_rates(rows: Iterable[dict[str, Any]], empty_ids: set[int]) -> dict[str, tuple[int, int]]:
    """Per section, (filled, total) decisions over rows holding one decision per section (others are QA rows or
    targets cut before their end, whose decisions cannot be told apart by position). A row's positions are
    sorted, so they follow the order the sections are written in (``WRITE_ORDER``)."""
    counts = {name: [0, 0] for name in WRITE_ORDER}
    for row in rows:
        positions = row.get("decisions") or []
        if len(positions) != len(WRITE_ORDER):
            continue
        for name, pos in zip(WRITE_ORDER, positions, strict=True):
            counts[name][0] += row["labels"][pos] not in empty_ids
            counts[name][1] += 1
    return {name: (f, n) for name, (f, n) in counts.items()}


def balanced_weights(
    rates: dict[str, tuple[int, int]], weight: float, cap: float = MAX_BALANCE
) -> list[tuple[float, float]]:
    """Per section in the order written (``WRITE_ORDER``, as a row's sorted positions), (weight if empty,
    weight if filled): ``weight`` times 0.5 / the class's share, capped; a section always empty (or always
    filled) in the sample keeps ``weight``."""
    out = []
    for name in WRITE_ORDER:
        filled, total = rates[name]
        if not total or filled in (0, total):
            out.append((weight, weight))
            continue
        share = filled / total
        out.append((weight * min(cap, 0.5 / (1 - share)), weight * min(cap, 0.5 / share)))
    return out


def decision_weights(
    positions: Sequence[int], labels: Sequence[int], empty_ids: set[int], slots: list[tuple[float, float]] | None,
    weight: float,
) -> list[tuple[int, float]]:  # fmt: skip
    """(position, loss weight) of one row's decision tokens: balanced by section where ``slots`` is given and
    the row has one decision per section, else ``weight`` for each."""
    if slots is None or len(positions) != len(slots):
        return [(p, weight) for p in positions]
    return [(p, slots[k][labels[p] not in empty_ids]) for k, p in enumerate(positions)]


def time_budget_callback(minutes: float) -> Any:
    """Stop training at the first optimizer step that ends after ``minutes`` of wall time; the Trainer then saves
    and the stage writes the adapter as after a full run (the log and model_info say where it stopped)."""
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def __init__(self) -> None:
            self.start = time.monotonic()
            self.stopped_at: int | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            if time.monotonic() - self.start >= minutes * 60 and state.global_step < state.max_steps:
                self.stopped_at = state.global_step
                control.should_training_stop = True
                control.should_save = control.should_evaluate = True
                log.info(
                    "training: the %.0f-minute budget is spent: stopping after step %d of %d",
                    minutes, state.global_step, state.max_steps,
                )  # fmt: skip

    return TimeBudget()


class PadCollator:
    """Dynamic padding to the longest example of the batch; padding is masked by length, never by token id."""

    def __init__(
        self,
        pad_id: int,
        pad_to_multiple_of: int | None = None,
        decision_weight: float = 1.0,
        balanced: tuple[set[int], list[tuple[float, float]]] | None = None,
    ):
        self.pad_id = pad_id
        self.multiple = pad_to_multiple_of
        # Above 1: a "weights" tensor gives the fill-or-empty tokens (``decisions``) this weight in the loss;
        # ``balanced`` (empty token ids, per-section weights: ``objective.balanced_weights``) weighs them by class.
        self.decision_weight = decision_weight
        self.balanced = balanced

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        if self.multiple:
            width = -(-width // self.multiple) * self.multiple
        input_ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            input_ids[i, :n] = torch.as_tensor(f["input_ids"])
            labels[i, :n] = torch.as_tensor(f["labels"])
            attention[i, :n] = 1
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
        if self.decision_weight != 1.0 or self.balanced:
            empty, slots = self.balanced or (set(), None)
            weights = torch.ones((len(features), width), dtype=torch.float32)
            for i, f in enumerate(features):
                for t, w in decision_weights(
                    f.get("decisions") or [], f["labels"], empty, slots, self.decision_weight
                ):
                    weights[i, t] = w
            batch["weights"] = weights
        return batch
