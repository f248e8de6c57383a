"""The retrieval rules chosen on the val split: the edit distance a misspelling may have, and the evidence
thresholds per query length; with the true- and false-positive rates each gives, for ``meta.json`` and the docs.

Positives are val foci written as their name and as people write them (``patients.reworded_condition``: a MedQuAD
synonym, an abbreviation the answers define, a lay name, a misspelling); negatives are real topics with no
evidence in the index (``no_evidence_topics``: foci of MedQuAD's answerless subsets that no answered focus
covers and no passage's focus or question names).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from typing import Any

from ..clinical.conditions import Lexicon, normal, strip_modifiers
from ..clinical.spelling import EditRule, misspell
from ..common.text import words
from ..data.medquad import FocusInfo, focus_key
from .hits import Hit
from .index import DEFAULT_K, BM25Index, condition_hits, search_hits

BANDS = ("1", "2", "3+")
RULE_KEYS = tuple(f"{route}:{band}" for route in ("focus", "bm25") for band in BANDS)
GRID = tuple(round(0.05 * i, 2) for i in range(20))
# The false-positive rate the evidence rule may not pass on val: the project's goal is at most one no-evidence
# record in six grounded on test, and val is small, so the rule is chosen with room to spare.
MAX_FPR = 0.1


def no_evidence_topics(infos: Iterable[FocusInfo], index: BM25Index) -> dict[str, list[str]]:
    """Foci of the answerless subsets (ADAM, Drugs, Herbs) that no answered focus covers (by name, synonym,
    misspelling or a contained name) and no passage's focus or question names, split between val and test by a
    hash of the focus (never both)."""
    lexicon = index.lexicon
    prefix_words: dict[str, set[int]] = {}
    for p in index.passages:
        for w in set(words(f"{p.focus} {p.question}")):
            prefix_words.setdefault(w, set()).add(p.pid)

    def named_by_a_passage(name: str) -> bool:
        ws = set(words(name))
        return bool(ws) and bool(set.intersection(*(prefix_words.get(w, set()) for w in ws)))

    out: dict[str, list[str]] = {"val": [], "test": []}
    seen: set[str] = set()
    for info in infos:
        key = focus_key(info.focus)
        if info.answered or key in seen:
            continue
        seen.add(key)
        names = (info.focus, *info.synonyms)
        if any(lexicon.lookup(n).foci or named_by_a_passage(n) for n in names):
            continue
        h = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)
        out["val" if h % 3 == 0 else "test"].append(info.focus)
    return {s: sorted(v) for s, v in out.items()}


def bare(text: str) -> str:
    return strip_modifiers(normal(text))


def word_band(text: str) -> str:
    n = len(focus_key(text).split())
    return "1" if n <= 1 else "2" if n == 2 else "3+"


def choose_edit_rule(lexicon: Lexicon, val_foci: Sequence[str], topics: Sequence[str], seed: int) -> dict:
    """``EditRule`` maximising TPR - FPR: a val focus name with one or two typing slips must find its focus; a
    no-evidence topic, and each word of one that is no known name (near misses such as "aerobic"), must find
    none."""
    rng = random.Random(f"{seed}-edit-rule")
    single = sorted(
        {w for t in topics for w in focus_key(t).split() if len(w) >= 4 and w not in lexicon.names}
    )
    negatives = sorted(rng.sample(list(topics), min(400, len(topics)))) + rng.sample(
        single, min(400, len(single))
    )
    pos = []
    for f in val_foci:
        typo = misspell(f, rng, edits=rng.choice((1, 1, 2)))
        if focus_key(typo) != focus_key(f):
            pos.append((typo, focus_key(f)))
    # A lookup depends on the rule only through the edits it allows a query (0, 1 or 2): three lookups per
    # query serve every rule of the grid.
    by_edits = [EditRule(99, 99), EditRule(0, 99), EditRule(0, 0)]

    def found(queries: list[str]) -> dict[str, list[tuple[str, ...]]]:
        return {q: [lexicon.lookup(q, r).foci for r in by_edits] for q in queries}

    pos_found, neg_found = found([t for t, _ in pos]), found(list(negatives))
    best: tuple[float, EditRule, float, float] = (-2.0, EditRule(), 0.0, 0.0)
    for lo in range(4, 10):
        for hi in range(lo + 2, 16):
            rule = EditRule(lo, hi)
            tpr = sum(want in pos_found[t][rule.max_edits(bare(t))] for t, want in pos) / max(1, len(pos))
            fpr = sum(bool(neg_found[n][rule.max_edits(bare(n))]) for n in negatives) / max(1, len(negatives))
            if tpr - fpr > best[0] + 1e-9:
                best = (tpr - fpr, rule, tpr, fpr)
    _, rule, tpr, fpr = best
    return {
        "min_one": rule.min_one,
        "min_two": rule.min_two,
        "chosen_on": "val foci with 1-2 typing slips (positives) vs no-evidence topics (negatives), Youden's J",
        "positives": len(pos),
        "negatives": len(negatives),
        "tpr": round(tpr, 4),
        "fpr": round(fpr, 4),
    }


def _found(hits: list[Hit], t: dict[str, float], k: int) -> list[Hit]:
    out, pairs = [], set()
    for h in hits:
        if h.about and h.share >= t[h.band] and h.passage.pair_id not in pairs:
            out.append(h)
            pairs.add(h.passage.pair_id)
            if len(out) >= k:
                break
    return out


def evidence_cases(
    index: BM25Index, positives: Sequence[tuple[str, str]], negatives: Sequence[tuple[str, tuple | None]]
) -> tuple[list, list]:
    """Hits for each positive ``(written condition, gold focus key)`` over all passages, and each negative
    ``(condition, splits)``: what ``choose_evidence_rule`` and the val rates are computed from.

    A positive written as its focus's exact name is also searched by BM25 alone, as if the lexicon did not
    know it (a condition no focus is named after, such as "uveitis"): without these the BM25 route would have
    almost no positives on val, and nothing would stop its thresholds from shutting one-word conditions out."""
    pos = [(c, gold, condition_hits(index, c)) for c, gold in positives]
    pos += [
        (c, gold, search_hits(index, c))
        for c, gold in positives
        if focus_key(c) == gold and gold in index.by_focus
    ]
    neg = [(c, condition_hits(index, c, splits)) for c, splits in negatives]
    return pos, neg


def rates(pos: list, neg: list, t: dict[str, float], k: int = DEFAULT_K) -> dict[str, Any]:
    """TPR (the gold focus among the first ``k`` evidence hits) and FPR (any evidence) per written length band."""
    out: dict[str, Any] = {}
    for band in (*BANDS, "all"):  # rates by the length of the condition as written
        p = [g for c, g, h in pos if band in ("all", word_band(c))]
        tp = sum(
            any(focus_key(x.passage.focus) == gold for x in _found(h, t, k))
            for c, gold, h in pos
            if band in ("all", word_band(c))
        )
        n = [c for c, h in neg if band in ("all", word_band(c))]
        fp = sum(bool(_found(h, t, k)) for c, h in neg if band in ("all", word_band(c)))
        out[band] = {
            "positives": len(p),
            "tpr": round(tp / len(p), 4) if p else None,
            "negatives": len(n),
            "fpr": round(fp / len(n), 4) if n else None,
        }
    return out


def choose_evidence_rule(pos: list, neg: list, k: int = DEFAULT_K) -> dict[str, Any]:
    """Thresholds per route and length band (coordinate ascent over ``GRID`` from 0) maximising TPR - FPR with
    FPR at most ``MAX_FPR``, over all val queries together; ties keep the lower threshold."""
    t = dict.fromkeys(RULE_KEYS, 0.0)

    def objective(th: dict[str, float]) -> float:
        r = rates(pos, neg, th, k)["all"]
        tpr, fpr = r["tpr"] or 0.0, r["fpr"] or 0.0
        return tpr - fpr - (10.0 if fpr > MAX_FPR else 0.0)

    best = objective(t)
    for _ in range(3):
        changed = False
        for band in RULE_KEYS:
            for v in GRID:
                trial = {**t, band: v}
                if (score := objective(trial)) > best + 1e-9:
                    best, t, changed = score, trial, True
        if not changed:
            break
    return {
        "thresholds": t,
        "chosen_on": "val: exact and reworded val foci (positives) vs val no-evidence topics (negatives); "
        f"TPR - FPR with FPR <= {MAX_FPR}",
        "val_rates": rates(pos, neg, t, k),
    }
