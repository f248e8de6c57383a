"""The data step's passage index: BM25 over every split's answer passages with the condition lexicon, the
misspelling and evidence rules chosen on the val foci (positives written as people write them, negatives the
real topics with no evidence), the encoder's passage vectors and thresholds when it is at hand, and the
no-evidence topics of val and test. Here, above retrieval, because the val positives are reworded the way
synthetic patients word their conditions (``patients.reworded_condition``).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from ..clinical.conditions import Lexicon
from ..clinical.spelling import EditRule
from ..common.progress import step
from ..data import medquad
from ..data.passages import ApproxTokenizer, build_passages
from ..retrieval import dense, hybrid
from ..retrieval import index as retrieval
from ..retrieval.hybrid_rules import choose_dense_rules, read_consumer_set
from ..retrieval.rules import choose_edit_rule, choose_evidence_rule, evidence_cases, no_evidence_topics
from . import patients

log = logging.getLogger(__name__)


# No-evidence topics per split in the treatment examples: enough for a rate, few beside the answered cases.
NO_EVIDENCE_ROWS = {"val": 40, "test": 80}


def build_index(
    split_pairs: dict,
    tokenizer,
    infos: list[medquad.FocusInfo] | None = None,
    seed: int = 42,
    encoder: dense.MiniLM | None = None,
    old_index: Path | None = None,
    encoder_threads: int = 0,
) -> retrieval.BM25Index:
    """BM25 over answer passages of every split (training prompts filter to train), with the condition lexicon
    and the misspelling and evidence rules chosen on the val foci; ``meta["no_evidence"]`` holds the val and
    test no-evidence topics."""
    passages = build_passages(split_pairs, tokenizer or ApproxTokenizer())
    infos = infos or []
    lexicon = Lexicon.build(
        sorted({p.focus for p in passages}),
        medquad.synonyms_by_focus(infos),
        [(p.focus, p.answer) for rows in split_pairs.values() for p in rows],
    )
    index = retrieval.BM25Index.build(passages, lexicon=lexicon)
    val_foci = sorted({p.focus for p in split_pairs["val"]})
    topics = no_evidence_topics(infos, index)
    edit = choose_edit_rule(lexicon, val_foci, topics["val"], seed)
    lexicon.rule = EditRule(edit["min_one"], edit["min_two"])
    rng = random.Random(f"{seed}-val-rules")
    positives = [(f, medquad.focus_key(f)) for f in val_foci]
    for f in val_foci:
        if (found := patients.reworded_condition(f, lexicon, rng)) is not None:
            positives.append((found[0], medquad.focus_key(f)))
    # Negatives are the real topics with no evidence; val foci searched among train passages are not used to
    # choose (the focus split puts related foci in train: "Asperger syndrome" is rightly found under autism).
    negatives = [(t, None) for t in topics["val"]]
    if positives and negatives:
        index.meta["evidence"] = choose_evidence_rule(*evidence_cases(index, positives, negatives))
    else:
        index.meta["evidence"] = {
            "thresholds": dict(retrieval.FALLBACK_EVIDENCE),
            "chosen_on": "fallback: no val foci or no no-evidence topics (a source without answerless documents)",
        }
    index.meta["edit_rule"] = edit
    if encoder is not None:
        add_dense(index, encoder, positives, topics["val"], old_index, encoder_threads)
    index.meta["no_evidence"] = {
        s: sorted(random.Random(f"{seed}-no-evidence-{s}").sample(t, min(len(t), NO_EVIDENCE_ROWS[s])))
        for s, t in topics.items()
    }
    index.meta["no_evidence_topics_available"] = {s: len(t) for s, t in topics.items()}
    index.meta["tokenizer"] = (
        getattr(tokenizer, "name_or_path", "") if tokenizer else ApproxTokenizer.name_or_path
    )
    log.info(
        "passage index: %d passages, BM25 built in %.1f s (the whole index step is timed below); "
        "evidence thresholds %s, edit rule %s",
        len(passages),
        index.meta["build_s"],
        index.evidence_rule,
        (lexicon.rule.min_one, lexicon.rule.min_two),
    )
    return index


def add_dense(
    index: retrieval.BM25Index,
    encoder: dense.MiniLM,
    positives: list,
    val_topics: list,
    old_index: Path | None = None,
    encoder_threads: int = 0,
) -> None:
    """Passage vectors (reused from the index being replaced when they were computed from the same passages by
    the same weights) and the evidence-by-meaning thresholds chosen on val."""
    texts, row_of = dense.answer_openings(index.passages)
    vectors = dense.embed_passages(encoder, texts, [old_index] if old_index else [], encoder_threads or None)
    index.dense = hybrid.DenseSide(encoder, vectors, row_of)
    with step("choosing the evidence-by-meaning thresholds on val"):
        rules = choose_dense_rules(index, positives, val_topics, read_consumer_set(split="val"))
    index.meta["dense"] = {**rules, "vectors": vectors.meta, "encoded": "the opening passage of each answer"}
