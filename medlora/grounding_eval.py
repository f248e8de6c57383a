"""Evaluation of grounding (evaluate_model.py calls these): retrieval recall of the gold focus, abstention on
records without evidence, citation precision and recall, the share of grounded medications, and the
extractive baseline, each with bootstrap intervals over items.

Definitions (deterministic, ``medlora.grounding.support``):
- citation recall: share of output items whose cited passages together hold at least 60% of the item's content
  words (medications: a cited passage names the drug);
- citation precision: share of citations whose passage alone supports its item the same way;
- grounded medications: share of output medications named in a passage they cite;
- abstention: on examples whose passages hold nothing about the focus, the share of outputs with every cited
  section empty (only the uncited safety actions may remain).
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from typing import Any

import numpy as np

from .grounding import UNCITED_SECTIONS, citation_scores, extractive_target
from .medquad import focus_key
from .metrics import bootstrap_indices, percentile_ci
from .retrieval import (
    FALLBACK_THRESHOLD,
    BM25Index,
    Passage,
    condition_query,
    retrieve_for_record,
    words,
)
from .schemas import SECTION_NAMES, Citations, PatientRecord, Sections, to_published


def retrieval_metrics(
    index: BM25Index, foci: Sequence[str], ks: Sequence[int] = (1, 4, 10)
) -> dict[str, Any]:
    """Plain BM25 recall@k of the gold focus for "<focus> treatment" (the focus-name match is not used: with
    it, recall is 1 by construction for a condition spelled as its MedQuAD focus)."""
    return {f"recall@{k}": recall_at_k(index, foci, k)["recall"] for k in ks} | {"queries": len(foci)}


def choose_threshold(
    index: BM25Index, foci: Sequence[str], search_splits: Sequence[str] = ("train",)
) -> dict[str, Any]:
    """A BM25 score threshold for "this hit is evidence", chosen on held-out foci (the val split).

    For each held-out focus, its condition query against the whole index is a positive when the top hit is
    the focus itself; the same query against ``search_splits`` only (where the focus is absent, since the split
    is by focus) is a negative: whatever it finds is about another disease. A hit is evidence when its score
    reaches the threshold and its passage holds every word of the condition (``BM25Index.search(require=)``);
    the threshold maximises TPR - FPR (Youden's J) of that rule over the observed scores.
    """

    def covered(focus: str, hit: Any) -> bool:
        return set(words(focus)) <= set(words(hit.passage.shown))

    pos, neg = [], []
    for f in foci:
        q = condition_query(f)
        top = index.search(q, 1)
        if top and focus_key(top[0].passage.focus) == focus_key(f):
            pos.append((top[0].score, covered(f, top[0])))
        other = index.search(q, 1, splits=search_splits, exclude_focus=f)
        neg.append((other[0].score, covered(f, other[0])) if other else (0.0, False))
    if not pos:
        return {
            "threshold": FALLBACK_THRESHOLD,
            "chosen_on": "fallback: no held-out focus query retrieved its focus",
        }
    pos_a, neg_a = np.array(pos, dtype=np.float64), np.array(neg, dtype=np.float64)

    def rates(t: float) -> tuple[float, float]:
        return (
            float(((pos_a[:, 0] >= t) & (pos_a[:, 1] > 0)).mean()),
            float(((neg_a[:, 0] >= t) & (neg_a[:, 1] > 0)).mean()),
        )

    best = (-2.0, FALLBACK_THRESHOLD)
    for t in sorted({x for x, _ in pos} | {x for x, _ in neg}):
        tpr, fpr = rates(t)
        if tpr - fpr > best[0]:
            best = (tpr - fpr, t)
    t = best[1]
    tpr, fpr = rates(t)
    return {
        "threshold": round(float(t), 4),
        "chosen_on": "val foci: Youden's J of (top-1 BM25 score >= t and the passage names the condition), "
        "own focus vs other foci",
        "queries": len(foci),
        "positives": len(pos),
        "tpr": round(tpr, 4),
        "fpr": round(fpr, 4),
    }


def recall_at_k(index: BM25Index, foci: Sequence[str], k: int = 4) -> dict[str, Any]:
    """Share of foci whose condition query (plain BM25, no focus match) returns a passage of the focus in the top k."""
    found = 0
    for f in foci:
        hits = index.search(condition_query(f), k)
        found += any(focus_key(h.passage.focus) == focus_key(f) for h in hits)
    return {"k": k, "queries": len(foci), "recall": round(found / len(foci), 4) if foci else None}


def nonsense_conditions(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(6, 11))) + " syndrome"
        for _ in range(n)
    ]


def abstention_metrics(
    index: BM25Index, held_out_foci: Sequence[str], seed: int, n_nonsense: int = 100
) -> dict:
    """Share of no-evidence records that retrieval abstains on: invented condition names, and held-out foci
    searched among training passages only (where, by the focus split, nothing is about them)."""
    nonsense = [PatientRecord(conditions=[c]) for c in nonsense_conditions(n_nonsense, seed)]
    held = [PatientRecord(conditions=[f]) for f in held_out_foci]
    a = [not retrieve_for_record(r, index) for r in nonsense]
    b = [not retrieve_for_record(r, index, splits=("train",)) for r in held]
    return {
        "invented_conditions": {"n": len(a), "abstained": float(np.mean(a)) if a else None},
        "held_out_foci_vs_train_passages": {"n": len(b), "abstained": float(np.mean(b)) if b else None},
        "threshold": index.threshold,
    }


def row_passages(row: dict[str, Any], index: BM25Index) -> list[Passage]:
    return [index.passages[i] for i in row.get("passages", [])]


def _ratio_ci(num: np.ndarray, den: np.ndarray, idx: np.ndarray) -> tuple[float | None, list[float] | None]:
    if den.sum() == 0:
        return None, None
    value = float(num.sum() / den.sum())
    if not len(num):
        return value, None
    boot = num[idx].sum(axis=1) / np.maximum(den[idx].sum(axis=1), 1)
    return value, percentile_ci(boot)


def grounded_scores(
    rows: Sequence[dict[str, Any]],
    outputs: Sequence[tuple[Sections, Citations]],
    index: BM25Index,
    seed: int,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Citation precision/recall, grounded medications and abstention over ``rows`` (test treatment examples
    with their passages) and one output per row, with bootstrap 95% intervals over rows."""
    counts = [citation_scores(s, c, row_passages(r, index)) for r, (s, c) in zip(rows, outputs, strict=True)]
    arr = {k: np.array([c[k] for c in counts], dtype=np.float64) for k in (counts[0] if counts else {})}
    idx = bootstrap_indices(len(rows), n_boot, seed)
    out: dict[str, Any] = {"n": len(rows)}
    if not counts:
        return out
    for name, (num, den) in {
        "citation_recall": ("items_supported", "items"),
        "citation_precision": ("citations_precise", "citations"),
        "grounded_medications": ("meds_grounded", "meds"),
    }.items():
        out[name], out[f"{name}_ci"] = _ratio_ci(arr[num], arr[den], idx)
    abstain_rows = [i for i, r in enumerate(rows) if r.get("abstain")]
    empty = np.array(
        [
            not any(getattr(outputs[i][0], n) for n in SECTION_NAMES if n not in UNCITED_SECTIONS)
            for i in abstain_rows
        ],
        dtype=np.float64,
    )
    out["abstention_n"] = len(abstain_rows)
    out["abstention"] = float(empty.mean()) if len(empty) else None
    out["abstention_ci"] = (
        percentile_ci(empty[bootstrap_indices(len(empty), n_boot, seed)].mean(axis=1)) if len(empty) else None
    )
    return out


def extractive_outputs(rows: Sequence[dict[str, Any]], index: BM25Index) -> list[tuple[Sections, Citations]]:
    """The baseline: the training-target rules applied to each row's passages, citing them."""
    return [to_published(extractive_target(row_passages(r, index))) for r in rows]


def gold_outputs(rows: Sequence[dict[str, Any]]) -> list[tuple[Sections, Citations]]:
    """The targets themselves (a sanity line: their citations are supported by construction)."""
    from .schemas import GroundedSections

    return [to_published(GroundedSections.model_validate_json(r["messages"][-1]["content"])) for r in rows]


def focus_in_passages(row: dict[str, Any], index: BM25Index) -> bool:
    return any(focus_key(p.focus) == focus_key(row["focus"]) for p in row_passages(row, index))


def model_outputs(
    model: Any,
    tokenizer: Any,
    rows: Sequence[dict[str, Any]],
    index: BM25Index,
    max_new_tokens: int,
    batch_size: int,
) -> list[Any]:
    """Constrained grounded generation for each row's record and passages (the inference path's generator)."""
    from .generation import SectionsGenerator

    gen = SectionsGenerator(model, tokenizer, max_new_tokens=max_new_tokens)
    records = [PatientRecord.model_validate(r["record"]) if "record" in r else _record_of(r) for r in rows]
    return gen.generate(records, batch_size=batch_size, passages=[row_passages(r, index) for r in rows])


def _record_of(row: dict[str, Any]) -> PatientRecord:
    # Rows written before records were stored: the prompt holds the record as JSON after "Patient record: ".
    import json

    user = row["messages"][1]["content"]
    return PatientRecord.model_validate(json.loads(user.split("\n", 1)[0].removeprefix("Patient record: ")))


def calibration(
    generated: Sequence[Any], rows: Sequence[dict[str, Any]], index: BM25Index, bins: int = 10
) -> dict[str, Any]:
    """Expected calibration error of the per-section mean token probability against section correctness: a
    section is correct when it is empty exactly when the target's is, and every item it has is supported by the
    passages it cites."""
    from .grounding import supports
    from .schemas import GroundedSections

    conf, correct = [], []
    for g, row in zip(generated, rows, strict=True):
        target, _ = to_published(GroundedSections.model_validate_json(row["messages"][-1]["content"]))
        passages = row_passages(row, index)
        for name in SECTION_NAMES:
            p = g.token_probs.get(name)
            if p is None:
                continue
            items, cites = getattr(g.sections, name), g.citations.get(name, [])
            ok = bool(items) == bool(getattr(target, name)) and all(
                name in UNCITED_SECTIONS
                or supports(it, " ".join(passages[n - 1].shown for n in c if 1 <= n <= len(passages)), name)
                for it, c in zip(items, cites, strict=False)
            )
            conf.append(p)
            correct.append(float(ok))
    if not conf:
        return {"n_sections": 0, "ece": None}
    c, y = np.array(conf), np.array(correct)
    which = np.minimum((c * bins).astype(int), bins - 1)
    ece = sum(
        abs(c[which == b].mean() - y[which == b].mean()) * (which == b).mean()
        for b in range(bins)
        if (which == b).any()
    )
    return {
        "n_sections": len(conf),
        "ece": round(float(ece), 4),
        "accuracy": float(y.mean()),
        "mean_confidence": float(c.mean()),
    }


def no_evidence_rows(rows: Sequence[dict[str, Any]], index: BM25Index, k: int = 4) -> list[dict[str, Any]]:
    """Each row again with only passages about other foci (its condition query's best BM25 hits elsewhere):
    a model that uses its evidence abstains on these (RAFT's distractor-only case, on held-out foci)."""
    from .retrieval import condition_query

    out = []
    for r in rows:
        hits = index.search(condition_query(r["focus"]), k, exclude_focus=r["focus"])
        out.append({**r, "passages": [h.passage.pid for h in hits], "abstain": True})
    return out


def baselines(
    index: BM25Index, test_rows: Sequence[dict[str, Any]], seed: int, n_boot: int
) -> dict[str, Any]:
    """What needs no model: retrieval recall and abstention, the extractive baseline on the test treatment rows
    (with their passages, and with distractors only), and the targets themselves."""
    treatment = [r for r in test_rows if r["kind"] == "treatment" and "passages" in r]
    foci = sorted({r["focus"] for r in test_rows})
    return {
        "retrieval": retrieval_metrics(index, foci),
        "abstention_by_retrieval": abstention_metrics(index, foci, seed),
        "extractive_baseline": grounded_scores(
            treatment, extractive_outputs(treatment, index), index, seed, n_boot
        ),
        "extractive_baseline_no_evidence": grounded_scores(
            no_evidence_rows(treatment, index),
            extractive_outputs(no_evidence_rows(treatment, index), index),
            index,
            seed,
            n_boot,
        ),
        "targets": grounded_scores(treatment, gold_outputs(treatment), index, seed, n_boot),
    }


def model_report(
    model: Any,
    tokenizer: Any,
    rows: Sequence[dict[str, Any]],
    index: BM25Index,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    n_boot: int,
) -> dict[str, Any]:
    """Grounded generation on the rows with their passages and again with distractors only."""
    rows = [r for r in rows if "passages" in r]
    gens = model_outputs(model, tokenizer, rows, index, max_new_tokens, batch_size)
    out = grounded_scores(rows, [(g.sections, g.citations) for g in gens], index, seed, n_boot)
    out["calibration"] = calibration(gens, rows, index)
    none = no_evidence_rows(rows, index)
    gens = model_outputs(model, tokenizer, none, index, max_new_tokens, batch_size)
    out["no_evidence"] = grounded_scores(none, [(g.sections, g.citations) for g in gens], index, seed, n_boot)
    return out
