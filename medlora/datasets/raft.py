"""Treatment training examples, RAFT-style (Zhang et al. 2024): the focus's passages plus distractors.

``make_grounder`` is the ``ground`` callable of ``treatment_data.build_examples``: for the train split each case
gets the focus's train passages that support most target items plus one or two distractors (BM25 hits of other
foci for the same condition), shuffled, and a target citing them; a share of cases gets distractors only and a
target that abstains (only the safety rules' actions). Val and test cases get what inference would retrieve.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from ..common.schemas import SECTION_NAMES, UNCITED_SECTIONS, Sections
from ..data.medquad import focus_key
from ..data.passages import Passage
from ..data.prompts import treatment_messages
from ..grounding.support import supports
from ..retrieval.index import (
    DEFAULT_K,
    DEFAULT_MAX_CONTEXT_TOKENS,
    BM25Index,
    condition_query,
    retrieve_for_record,
)
from .learnable import DEFAULT_TARGET_TOKENS, inference_passages, learnable_target
from .targets import ground_target

DEFAULT_NO_RELEVANT_SHARE = 0.2


def raft_example(
    index: BM25Index,
    focus: str,
    sections: Sections,
    k: int,
    rng: random.Random,
    no_relevant: bool = False,
    splits: Sequence[str] = ("train",),
) -> tuple[list[Passage], BaseModel]:
    """Passages and target for one treatment example.

    Relevant: the focus's passages that support most target items (greedy cover), one per parent pair, leaving
    one or two slots to distractors: the top BM25 passages of other foci for the focus's condition query, so
    they look related. Shuffled. ``no_relevant``: distractors only, and the target abstains (all empty).
    """
    n_distract = k if no_relevant else min(k - 1, rng.choice((1, 2))) if k > 1 else 0
    relevant = [] if no_relevant else golden_passages(index, focus, sections, k - n_distract, splits)
    hits = index.search(condition_query(focus), 20, splits=splits, exclude_focus=focus)
    candidates = [h.passage for h in hits if h.passage.pair_id not in {p.pair_id for p in relevant}]
    distractors = rng.sample(candidates, min(len(candidates), k - len(relevant)))
    passages = relevant + distractors
    rng.shuffle(passages)
    target = ground_target(sections if relevant else _safety_only(sections), passages)
    return passages, target


def golden_passages(
    index: BM25Index, focus: str, sections: Sections, n: int, splits: Sequence[str] = ("train",)
) -> list[Passage]:
    """Up to ``n`` of the focus's passages that support most target items (greedy cover), one per parent pair."""
    items = [(name, it) for name in SECTION_NAMES for it in getattr(sections, name)]
    pool = [h.passage for h in index.focus_passages(focus, condition_query(focus), splits)]
    relevant: list[Passage] = []
    covered: set[int] = set()
    pairs: set[str] = set()
    while len(relevant) < n:
        best, gain = None, 0
        for p in pool:
            if p.pair_id in pairs:
                continue
            g = sum(1 for j, (name, it) in enumerate(items) if j not in covered and supports(it, p, name))
            if g > gain:
                best, gain = p, g
        if best is None:
            break
        relevant.append(best)
        pairs.add(best.pair_id)
        covered |= {j for j, (name, it) in enumerate(items) if supports(it, best, name)}
    return relevant


def _safety_only(sections: Sections) -> Sections:
    return Sections(**{name: getattr(sections, name) for name in UNCITED_SECTIONS})


def make_grounder(
    index: BM25Index,
    split: str,
    k: int = DEFAULT_K,
    no_relevant_share: float = DEFAULT_NO_RELEVANT_SHARE,
    max_tokens: int = DEFAULT_MAX_CONTEXT_TOKENS,
    inference_like: bool = True,
    count_tokens: Callable[[str], int] | None = None,
    max_target_tokens: int = DEFAULT_TARGET_TOKENS,
) -> Callable[[Any, random.Random], dict[str, Any]]:
    """The ``ground`` callable of ``treatment_data.build_examples``: a case -> prompt with passages and target.

    train: RAFT passages from train-split passages only (a ``no_relevant_share`` of cases get distractors only
    and an abstaining target); val/test: the passages inference would retrieve for the record, from all
    splits, and an abstaining target when none is about the focus.

    ``inference_like`` (issue 26, ``medlora.datasets.learnable``): train prompts hold the comorbidities' passages as
    retrieval gives them, and train and val targets are ``learnable_target`` (immediate_actions left to the
    rules, grammar-safe strings, at most ``max_target_tokens`` by ``count_tokens``); off: the earlier RAFT
    examples.
    """

    def ground(case: Any, rng: random.Random) -> dict[str, Any]:
        if split == "train" and inference_like:
            abstain = rng.random() < no_relevant_share
            golden = [] if abstain else golden_passages(index, case.focus, case.target, k, ("train",))
            passages = inference_passages(
                index, case.focus, case.record.conditions, golden, k, rng, abstain, ("train",)
            )
            target = ground_target(_safety_only(case.target) if abstain else case.target, passages)
        elif split == "train":
            abstain = rng.random() < no_relevant_share
            passages, target = raft_example(index, case.focus, case.target, k, rng, abstain, ("train",))
        else:
            passages = [h.passage for h in retrieve_for_record(case.record, index, k, max_tokens)]
            abstain = not any(focus_key(p.focus) == focus_key(case.focus) for p in passages)
            target = ground_target(_safety_only(case.target) if abstain else case.target, passages)
        if split != "test" and inference_like:
            # Test targets stay as the evaluation has always scored them (their safety actions included).
            target = learnable_target(target, count_tokens, max_target_tokens)
        return {
            "messages": treatment_messages(case.record, target, passages),
            "passages": [p.pid for p in passages],
            "abstain": abstain,
        }

    return ground
