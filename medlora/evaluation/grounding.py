"""Evaluation of grounding (evaluate_model.py calls these): retrieval recall of the gold focus, abstention on
records without evidence, citation precision and recall, the share of grounded medications, and the
extractive baseline, each with bootstrap intervals over items.

Definitions (deterministic, ``medlora.grounding.check.support``):
- citation recall: share of output items whose cited passages together hold at least 60% of the item's content
  words (medications: a cited passage names the drug);
- citation precision: share of citations whose passage alone supports its item the same way;
- grounded medications: share of output medications named in a passage they cite;
- abstention: on examples whose passages hold nothing about the focus, the share of outputs with every cited
  section empty (only the uncited safety actions may remain);
- answered on evidence: on examples whose target has an item the passages support, the share of outputs with
  any cited section filled (an output that never answers scores a perfect citation precision over nothing; this says so).

Every figure over all rows and per ``variant`` ("exact", "reworded", "no_evidence"; absent means "exact").
The no-model rows (``no_model_outputs``): the extractive rules on each row's passages, an empty output, and a
constant emergency action.
"""

from __future__ import annotations

import random
import string
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..common.progress import Progress
from ..common.schemas import SECTION_NAMES, UNCITED_SECTIONS, Citations, PatientRecord, Sections, to_published
from ..data.medquad import focus_key
from ..datasets.targets import extractive_target
from ..grounding.check import check_output
from ..retrieval.index import BM25Index, condition_query, retrieve_for_record
from ..safety.rules import apply_safety
from .citations import citation_scores
from .items import EvalItem, as_items, distractor_passages, has_content
from .stats import bootstrap_indices, ratio_ci


def retrieval_metrics(
    index: BM25Index, foci: Sequence[str], ks: Sequence[int] = (1, 4, 10)
) -> dict[str, Any]:
    """Plain BM25 recall@k of the gold focus for "<focus> treatment" (the focus-name match is not used: with
    it, recall is 1 by construction for a condition spelled as its MedQuAD focus)."""
    return {f"recall@{k}": recall_at_k(index, foci, k)["recall"] for k in ks} | {"queries": len(foci)}


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
        "evidence_rule": index.evidence_rule,
    }


Rows = Sequence[EvalItem | Mapping[str, Any]]  # test items, or plain rows read on the spot (``as_items``)


def grounded_scores(
    rows: Rows,
    outputs: Sequence[tuple[Sections, Citations]],
    index: BM25Index,
    seed: int,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Citation precision/recall, grounded medications, abstention and answering over ``rows`` (test treatment
    items with their passages) and one output per row, with bootstrap 95% intervals over rows."""
    items = as_items(rows, index)
    counts = [citation_scores(s, c, it.passages) for it, (s, c) in zip(items, outputs, strict=True)]
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
        out[name], out[f"{name}_ci"] = ratio_ci(arr[num], arr[den], idx)
    out["cited_items"] = int(arr["items"].sum())
    abstain = np.array([it.abstain for it in items], dtype=np.float64)
    evidence = np.array([it.evidence for it in items], dtype=np.float64)
    out["abstention_n"] = int(abstain.sum())
    out["answered_on_evidence_n"] = int(evidence.sum())
    # As generated, and as published (after the grounding check and the safety rules: what a user reads).
    for suffix, sections in (("", [s for s, _ in outputs]), ("_published", published(items, outputs))):
        empty = np.array([not has_content(s) for s in sections], dtype=np.float64)
        out[f"abstention{suffix}"], out[f"abstention{suffix}_ci"] = ratio_ci(empty * abstain, abstain, idx)
        out[f"answered_on_evidence{suffix}"], out[f"answered_on_evidence{suffix}_ci"] = ratio_ci(
            (1 - empty) * evidence, evidence, idx
        )
    return out


def published(items: Sequence[EvalItem], outputs: Sequence[tuple[Sections, Citations]]) -> list[Sections]:
    """What inference publishes of each output: the grounding check (given what the passages concern), then the
    safety rules."""
    out = []
    for it, (sections, cites) in zip(items, outputs, strict=True):
        if it.record is None or it.facts is None:
            out.append(sections)
            continue
        g = check_output(it.record, sections, cites, it.passages, it.facts.drugs, it.concerns)
        out.append(apply_safety(it.record, g.sections, it.facts).sections)
    return out


def grounded_report(
    rows: Rows,
    outputs: Sequence[tuple[Sections, Citations]],
    index: BM25Index,
    seed: int,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """``grounded_scores`` over all rows and per variant of the rows."""
    items = as_items(rows, index)
    out = grounded_scores(items, outputs, index, seed, n_boot)
    variants = [it.variant for it in items]
    out["by_variant"] = {}
    for v in sorted(set(variants)):
        keep = [i for i, w in enumerate(variants) if w == v]
        out["by_variant"][v] = grounded_scores(
            [items[i] for i in keep], [outputs[i] for i in keep], index, seed, n_boot
        )
    return out


def extractive_outputs(rows: Rows, index: BM25Index) -> list[tuple[Sections, Citations]]:
    """The baseline: the training-target rules applied to each row's passages, citing them."""
    return [to_published(extractive_target(list(it.passages))) for it in as_items(rows, index)]


def empty_outputs(rows: Sequence[Any]) -> list[tuple[Sections, Citations]]:
    """The silent baseline: every section empty (no allergy violation, no duplicate, no citation is wrong)."""
    return [(Sections(), {}) for _ in rows]


# Written as a model would write it (the safety rules drop lines that start with "EMERGENCY", their own form).
CONSTANT_EMERGENCY = "Call 911 or go to the nearest emergency department now."


def emergency_outputs(rows: Sequence[Any]) -> list[tuple[Sections, Citations]]:
    """The alarmist baseline: one constant emergency action and nothing else, for every patient."""
    return [(Sections(immediate_actions=[CONSTANT_EMERGENCY]), {}) for _ in rows]


def no_model_outputs(rows: Rows, index: BM25Index) -> dict[str, list[tuple[Sections, Citations]]]:
    """The rows every model is compared with, on the same items: extractive rules, silence, a constant alarm."""
    return {
        "extractive": extractive_outputs(rows, index),
        "empty": empty_outputs(rows),
        "emergency_constant": emergency_outputs(rows),
    }


def gold_outputs(rows: Rows) -> list[tuple[Sections, Citations]]:
    """The targets themselves (a sanity line: their citations are supported by construction)."""
    return [(it.target, it.target_citations) for it in as_items(rows)]  # type: ignore[misc]


def model_outputs(
    model: Any,
    tokenizer: Any,
    rows: Rows,
    index: BM25Index,
    max_new_tokens: int,
    batch_size: int,
    desc: str = "grounded generation",
) -> list[Any]:
    """Constrained grounded generation for each row's record and passages (the inference path's generator).
    ``tokenizer`` None: ``model`` is a ready generator (``llama_backend.LlamaSectionsGenerator``)."""
    from ..generation.hf import SectionsGenerator

    gen = model if tokenizer is None else SectionsGenerator(model, tokenizer, max_new_tokens=max_new_tokens)
    items = as_items(rows, index)
    records = [it.record for it in items]
    passages = [list(it.passages) for it in items]
    out: list[Any] = []
    with Progress(len(rows), desc) as bar:
        for start in range(0, len(rows), batch_size):
            part = slice(start, start + batch_size)
            out.extend(gen.generate(records[part], batch_size=batch_size, passages=passages[part]))
            bar.update(len(records[part]))
    return out


def calibration(generated: Sequence[Any], rows: Rows, index: BM25Index, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error of the per-section mean token probability against section correctness: a
    section is correct when it is empty exactly when the target's is, and every item it has is supported by the
    passages it cites."""
    from ..grounding.support import supports

    conf, correct, filled = [], [], []
    for g, item in zip(generated, as_items(rows, index), strict=True):
        target, passages = item.target, item.passages
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
            filled.append(bool(items))
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
        # The reliability table (docs): per confidence bin, sections, their mean confidence and share correct.
        "bins": [
            {
                "from": b / bins,
                "to": (b + 1) / bins,
                "n": int((which == b).sum()),
                "mean_confidence": round(float(c[which == b].mean()), 4),
                "correct": round(float(y[which == b].mean()), 4),
            }
            for b in range(bins)
            if (which == b).any()
        ],  # fmt: skip
        "by_filled": {
            kind: {
                "n": int(m.sum()),
                "mean_confidence": round(float(c[m].mean()), 4),
                "correct": round(float(y[m].mean()), 4),
            }
            for kind, m in (("filled", np.array(filled)), ("empty", ~np.array(filled)))
            if m.any()
        },  # fmt: skip
    }


def no_evidence_rows(rows: Sequence[Mapping[str, Any]], index: BM25Index, k: int = 4) -> list[dict[str, Any]]:
    """Each row again with only passages about other foci (its condition query's best BM25 hits elsewhere):
    a model that uses its evidence abstains on these (RAFT's distractor-only case, on held-out foci). The
    evaluation's items carry this copy already (``items.build_items``)."""
    return [
        {**r, "passages": [p.pid for p in distractor_passages(r["focus"], index, k)], "abstain": True}
        for r in rows
    ]


def baselines(index: BM25Index, test_rows: Sequence[dict[str, Any]], seed: int) -> dict[str, Any]:
    """What needs no model and no output: retrieval recall and abstention by retrieval. The no-model output rows
    (extractive, empty, constant emergency) are scored beside the models in ``medlora.evaluation.rows``."""
    foci = sorted({r["focus"] for r in test_rows})
    return {
        "retrieval": retrieval_metrics(index, foci),
        "abstention_by_retrieval": abstention_metrics(index, foci, seed),
    }


def generated_outputs(
    model: Any,
    tokenizer: Any,
    rows: Rows,
    index: BM25Index,
    max_new_tokens: int,
    batch_size: int,
    desc: str = "grounded generation",
    calibrate: bool = True,
) -> tuple[list[tuple[Sections, Citations]], dict[str, Any] | None]:
    """Constrained grounded generation (the inference path) on the rows, and its calibration (None when not
    ``calibrate``: nobody reads it). A row without passages gets what inference publishes when retrieval finds
    nothing: no model call, every section empty (the safety rules add their actions afterwards)."""
    items = as_items(rows, index)
    with_passages = [i for i, it in enumerate(items) if it.passages]
    picked = [items[i] for i in with_passages]
    gens = model_outputs(model, tokenizer, picked, index, max_new_tokens, batch_size, desc)
    out: list[tuple[Sections, Citations]] = [(Sections(), {}) for _ in items]
    for i, g in zip(with_passages, gens, strict=True):
        out[i] = (g.sections, g.citations)
    return out, calibration(gens, picked, index) if calibrate else None
