"""The evidence-by-meaning thresholds chosen on val, and the consumer-style question set they are chosen on.

``tests/fixtures/consumer_questions.jsonl`` (written for this project, not drawn from MedQuAD's wording): questions
and symptom-led records as people write them ("my tummy hurts after i eat"), each with the MedQuAD foci whose
answers would answer it (``gold``), and questions MedQuAD has no answer for (``gold`` empty), split into val
(thresholds are chosen on it) and test (reported only).

Two thresholds on the cosine of a query with an answer's opening (``medlora.retrieval.hybrid``):

- ``question`` (a free-text question, the presenting complaint, a note): positives are the val answerable
  questions and records (the gold focus among the first ``k`` evidence hits), negatives the val no-answer
  questions, a question asking for what MedQuAD never answers (``medlora.retrieval.intents``) having no evidence
  at any threshold; the val no-evidence topics asked as questions ("what is X used for") are reported beside them, not
  chosen on (a drug or a test asked about this way is often answered in passing by a condition's passages);
- ``condition`` (a written condition with no lexical evidence, searched by meaning): positives and negatives as
  for the lexical rule (``retrieval_rules``), the lexical evidence kept as it is.

Each maximises TPR - FPR with FPR at most ``MAX_FPR``, over ``GRID``; a tie keeps the higher threshold.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.medquad import focus_key
from .hits import Hit
from .hybrid import INTENTS_VERSION, complaint, search
from .index import DEFAULT_K, BM25Index, condition_hits
from .intents import out_of_scope

CONSUMER_SET = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "consumer_questions.jsonl"
GRID = tuple(round(0.3 + 0.01 * i, 2) for i in range(61))
# The project's goal is at most one no-answer question in six grounded on test; val is small (24 questions), so
# the rule is chosen with room to spare.
MAX_FPR = 0.1
TOPIC_QUESTIONS = 200


def read_consumer_set(path: str | Path = CONSUMER_SET, split: str | None = None) -> list[dict[str, Any]]:
    """Rows ``{"id", "split", "text" | "record", "gold"}``; ``[]`` when the file is absent."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [r for r in rows if split is None or r["split"] == split]


def query_of(row: dict[str, Any]) -> str:
    """What is searched for a row: the question, or a record's presenting complaint."""
    if "text" in row:
        return row["text"]
    rec = row["record"]
    return complaint(rec.get("symptoms", [])) or "; ".join(rec.get("conditions", []))


def _evidence(hits: Sequence[Hit], t: float, k: int) -> list[Hit]:
    out, pairs = [], set()
    for h in hits:
        if h.similarity is not None and h.similarity >= t and h.passage.pair_id not in pairs:
            out.append(h)
            pairs.add(h.passage.pair_id)
            if len(out) >= k:
                break
    return out


def _hit_gold(hits: Sequence[Hit], gold: set[str]) -> bool:
    return any(focus_key(h.passage.focus) in gold for h in hits)


def choose_question_threshold(
    index: BM25Index, rows: Sequence[dict[str, Any]], topics: Sequence[str], k: int = DEFAULT_K
) -> dict[str, Any]:
    def hits(
        r: dict[str, Any],
    ) -> list[Hit]:  # a question MedQuAD never answers has no evidence at any threshold
        q = query_of(r)
        return [] if out_of_scope(q) else search(index, q, 20)

    pos = [(hits(r), {focus_key(g) for g in r["gold"]}) for r in rows if r["gold"]]
    neg = [hits(r) for r in rows if not r["gold"]]
    step = max(1, len(topics) // TOPIC_QUESTIONS)
    asked = [f"what is {t} used for" for t in list(topics)[::step][:TOPIC_QUESTIONS]]
    neg_topics = [search(index, q, 20) for q in asked]

    def rates(t: float) -> tuple[float, float, float]:
        tpr = sum(_hit_gold(_evidence(h, t, k), g) for h, g in pos) / max(1, len(pos))
        fpr = sum(bool(_evidence(h, t, k)) for h in neg) / max(1, len(neg))
        fpr_t = sum(bool(_evidence(h, t, k)) for h in neg_topics) / max(1, len(neg_topics))
        return tpr, fpr, fpr_t

    best = max(GRID, key=lambda t: (_objective(*rates(t)[:2]), t))
    tpr, fpr, fpr_t = rates(best)
    return {
        "threshold": best,
        "val": {
            "answerable": len(pos),
            "tpr": round(tpr, 4),
            "no_answer_questions": len(neg),
            "fpr": round(fpr, 4),
            "no_evidence_topic_questions": len(neg_topics),
            "fpr_topics": round(fpr_t, 4),
        },
    }


def _objective(tpr: float, *fprs: float) -> float:
    worst = max(fprs) if fprs else 0.0
    return tpr - worst - (10.0 if worst > MAX_FPR else 0.0)


def choose_condition_threshold(
    index: BM25Index,
    positives: Sequence[tuple[str, str]],
    negatives: Sequence[str],
    k: int = DEFAULT_K,
) -> dict[str, Any]:
    """Positives ``(written condition, gold focus key)`` and no-evidence topics: the lexical evidence as chosen,
    the search by meaning only where it finds none."""

    def cases(cond: str) -> tuple[list[Hit], list[Hit]]:
        lexical = [h for h in condition_hits(index, cond) if h.relevant]
        return lexical[:k], ([] if lexical else search(index, cond, 20, route="condition"))

    pos = [(cases(c), gold) for c, gold in positives]
    neg = [cases(c) for c in negatives]

    def found(case: tuple[list[Hit], list[Hit]], t: float) -> list[Hit]:
        return case[0] or _evidence(case[1], t, k)

    def rates(t: float) -> tuple[float, float]:
        tpr = sum(_hit_gold(found(c, t), {g}) for c, g in pos) / max(1, len(pos))
        fpr = sum(bool(found(c, t)) for c in neg) / max(1, len(neg))
        return tpr, fpr

    best = max(GRID, key=lambda t: (_objective(*rates(t)), t))
    tpr, fpr = rates(best)
    lexical_only = rates(2.0)
    return {
        "threshold": best,
        "val": {
            "positives": len(pos),
            "tpr": round(tpr, 4),
            "negatives": len(neg),
            "fpr": round(fpr, 4),
            "lexical_alone": {"tpr": round(lexical_only[0], 4), "fpr": round(lexical_only[1], 4)},
        },
    }


def choose_dense_rules(
    index: BM25Index,
    positives: Sequence[tuple[str, str]],
    topics: Sequence[str],
    consumer: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """Both thresholds, for ``meta["dense"]``; the question threshold falls back to the condition one when
    there is no consumer val set."""
    cond = choose_condition_threshold(index, positives, topics)
    question = (
        choose_question_threshold(index, consumer, topics)
        if consumer
        else {"threshold": cond["threshold"], "val": "no consumer val set: the condition threshold"}
    )
    return {
        "thresholds": {"question": question["threshold"], "condition": cond["threshold"]},
        "intents": INTENTS_VERSION,
        "chosen_on": f"val: TPR - FPR with FPR <= {MAX_FPR} (grid {GRID[0]}..{GRID[-1]}, ties to the higher)",
        "question": question["val"],
        "condition": cond["val"],
        "max_fpr": MAX_FPR,
    }
