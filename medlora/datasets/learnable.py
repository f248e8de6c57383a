"""Treatment training examples a small model can learn from (issue 26).

Three changes to the RAFT examples of ``medlora.datasets.raft``, each closing a measured gap between training and
inference:

- ``inference_passages``: a training prompt holds passages the way ``retrieval.retrieve_for_record`` fills
  them at inference, round-robin over the record's conditions, so the patient's comorbidities bring their own
  passages (31% of test passages concern a comorbidity; the earlier training prompts held 1 such passage in
  11,916). The primary condition's slots hold its golden passages (those supporting most target items), and a
  patient with no comorbidity gets, half the time, one distractor from another focus in the last slot (RAFT).
- ``learnable_target``: immediate_actions left empty (the safety rules add and strip the emergency line
  themselves, so a target holding it spends the first decision of every output on a line that is always
  replaced), strings the constrained grammar can write (no ``"`` or ``\\`` inside a string: 35 targets could
  not be produced), and a target no longer than the new-token budget (whole items dropped, fullest section
  first, as ``prompts.encode_example`` shortens).
- ``mixture``: the training sample, treatment-heavy, its content examples drawn with weights that favour the
  sections targets rarely fill (follow_up 1.7%, specialist_referrals 11%, lifestyle 13%), abstaining examples
  kept at their share of the split.

Targets stay grounded: every item still cites the passages that support it (``grounding.ground_target`` runs
first; the transformations only remove items or replace a quote mark).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from ..common.schemas import LEFT_TO_THE_RULES, SECTION_NAMES, GroundedSections
from ..data.medquad import focus_key
from ..data.passages import Passage
from ..retrieval.index import BM25Index, condition_hits, condition_query

# The target's budget in tokens: evaluation and the CPU recipe decode with 320 new tokens (docs/real-model.md),
# and a generation cut at the budget loses its last item.
DEFAULT_TARGET_TOKENS = 288
DISTRACTOR_SHARE = 0.5  # patients without comorbidity whose last slot holds another focus's passage


def grammar_safe(text: str) -> str:
    """The string as the constrained grammar can write it: double quotes become single ones, backslashes
    slashes, control characters spaces (``generation.sections_grammar`` excludes all three inside strings)."""
    out = text.replace('"', "'").replace("\\", "/")
    return "".join(" " if ord(c) < 32 else c for c in out).strip()


def _safe(value: Any) -> Any:
    if isinstance(value, str):
        return grammar_safe(value)
    if isinstance(value, list):
        return [_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _safe(v) for k, v in value.items()}
    return value


def learnable_target(
    target: BaseModel,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int = DEFAULT_TARGET_TOKENS,
) -> GroundedSections:
    """The target as trained: sections left to the rules emptied, strings grammar-safe, and (given a token
    counter) items dropped from the end of the fullest section until the JSON fits ``max_tokens``."""
    data = _safe(target.model_dump())
    for name in LEFT_TO_THE_RULES:
        data[name] = []
    out = GroundedSections.model_validate(data)
    if count_tokens is None:
        return out
    while count_tokens(out.model_dump_json()) > max_tokens:
        counts = {name: len(getattr(out, name)) for name in SECTION_NAMES}
        name = max(counts, key=lambda n: (counts[n], n))
        if counts[name] == 0:
            break
        setattr(out, name, getattr(out, name)[:-1])
    return out


def _round_robin(lists: Sequence[Sequence[Passage]], k: int) -> list[Passage]:
    """Up to ``k`` passages taken in turn from each list (as retrieval fills its slots), one per parent pair."""
    out: list[Passage] = []
    pairs: set[str] = set()
    iters = [iter(x) for x in lists]
    while iters and len(out) < k:
        for it in list(iters):
            p = next(it, None)
            while p is not None and p.pair_id in pairs:
                p = next(it, None)
            if p is None:
                iters.remove(it)
                continue
            out.append(p)
            pairs.add(p.pair_id)
            if len(out) == k:
                break
    return out


def comorbidity_passages(
    index: BM25Index, conditions: Sequence[str], focus: str, splits: Sequence[str] = ("train",)
) -> list[list[Passage]]:
    """For each condition after the first, the passages retrieval would give it (evidence only), none of the
    primary focus's."""
    key = focus_key(focus)
    out = []
    for c in conditions[1:]:
        hits = condition_hits(index, c, tuple(splits))
        out.append([h.passage for h in hits if h.relevant and focus_key(h.passage.focus) != key])
    return out


def inference_passages(
    index: BM25Index,
    focus: str,
    conditions: Sequence[str],
    golden: Sequence[Passage],
    k: int,
    rng: random.Random,
    abstain: bool = False,
    splits: Sequence[str] = ("train",),
) -> list[Passage]:
    """A training prompt's passages as inference fills them: the primary condition's list (``golden`` first,
    then the focus's other passages; with ``abstain``, BM25 hits of other foci for its name instead, the
    evaluation's distractors-only case) and each comorbidity's list, taken in turn. Shuffled half the time so
    citations are not learned as positions."""
    others = index.search(condition_query(focus), 20, splits=tuple(splits), exclude_focus=focus)
    distractors = [h.passage for h in others]
    if abstain:
        primary = distractors
    else:
        rest = [h.passage for h in index.focus_passages(focus, condition_query(focus), tuple(splits))]
        primary = [*golden, *(p for p in rest if p not in golden)]
    comorbid = comorbidity_passages(index, conditions, focus, splits)
    passages = _round_robin([primary, *comorbid], k)
    lone = not abstain and not any(comorbid) and distractors and len(passages) > 1
    if lone and rng.random() < DISTRACTOR_SHARE:
        passages[-1] = rng.choice(distractors[:5])
    if rng.random() < 0.5:
        rng.shuffle(passages)
    return passages
