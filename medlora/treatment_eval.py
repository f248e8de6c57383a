"""Treatment accuracy, measured honestly: the project's answer to the original card's "87% accuracy on
medical treatment tasks" (DESIGN.md, "Metrics": treatment accuracy).

Items are the test split's treatment examples: held-out foci (never seen in training), each with a synthetic
patient (``medlora.patients``) and a target built from the focus's sourced sections by the inference rules
(``medlora.treatment_data``). A model's output is scored twice: **raw** (what the model wrote, before any rule)
and **published** (after ``medlora.safety.apply_safety``, what a user sees). Per item:

- medications: a predicted medication matches a target one when they share an ingredient, or one names a drug
  class the other belongs to (``medlora.drugs``: "Advil" matches "ibuprofen", "ibuprofen" matches "NSAIDs");
  precision, recall and F1 are micro-averaged over items (sums of matches over sums of names);
- ROUGE-L F1 per section, over the items whose target section is not empty (section items joined);
- allergy violation: the output names a drug the patient is allergic to (directly or by class), over patients
  with an allergy; duplicate therapy: it prescribes a drug the patient already takes, over patients on drugs;
- red-flag recall: the first immediate action is an emergency action, over patients whose record raises a red
  flag;
- schema validity: the raw text parses as the output schema (an unparsable output counts as empty sections).

Every figure has a bootstrap 95% interval from resampling items (the same resamples for base and fine-tuned).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import drugs
from .metrics import percentile_ci, rouge_l_scores
from .safety import apply_safety
from .schemas import SECTION_NAMES, PatientRecord, Sections, parse_any_sections

EMERGENCY = re.compile(r"\bemergency\b|\b(?:911|999|112)\b|\bambulance\b", re.I)


def parse_output(text: str) -> Sections | None:
    """A model's text as ``Sections`` (plain or with citations), or None when it is not valid output."""
    try:
        return parse_any_sections(json.loads(text))[0]
    except (ValueError, TypeError):  # json and pydantic errors are ValueErrors; a JSON list is a TypeError
        return None


def target_sections(row: dict[str, Any]) -> Sections:
    return parse_any_sections(json.loads(row["messages"][-1]["content"]))[0]


def item_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    return " ".join(v for v in item.model_dump().values() if isinstance(v, str))


def _drug(name: str):
    return drugs.resolve(name)


def medications_match(pred: Any, gold: Any, pred_name: str, gold_name: str) -> bool:
    if pred is None or gold is None:
        return pred is None and gold is None and pred_name.strip().lower() == gold_name.strip().lower()
    if set(pred.ingredients) & set(gold.ingredients):
        return True
    # A class on either side matches its members and itself.
    return bool((gold.is_class or pred.is_class) and set(pred.classes) & set(gold.classes))


def medication_counts(pred: Sections, gold: Sections) -> tuple[int, int, int, int]:
    """(predicted names matched, predicted names, target names matched, target names), one-to-one greedy."""
    p = [(m.name, _drug(m.name)) for m in pred.medications]
    g = [(m.name, _drug(m.name)) for m in gold.medications]
    used: set[int] = set()
    matched_pred = 0
    for pn, pm in p:
        for j, (gn, gm) in enumerate(g):
            if j not in used and medications_match(pm, gm, pn, gn):
                used.add(j)
                matched_pred += 1
                break
    return matched_pred, len(p), len(used), len(g)


def item_scores(row: dict[str, Any], text: str) -> dict[str, Any]:
    """Everything one output contributes, raw and published."""
    record = PatientRecord.model_validate(row["record"])
    gold = target_sections(row)
    raw = parse_output(text)
    out: dict[str, Any] = {
        "valid": raw is not None,
        "has_allergy": bool(record.allergies),
        "has_meds": bool(record.medications),
        "has_flag": bool(row.get("red_flags")),
    }
    raw = raw or Sections()
    published = apply_safety(record, raw).sections
    for name, sections in (("raw", raw), ("published", published)):
        audit = apply_safety(record, sections)
        out[name] = {
            "meds": medication_counts(sections, gold),
            "allergy_violation": bool(audit.safety.allergy_conflicts),
            "duplicate": bool(audit.duplicates),
            "emergency_first": bool(sections.immediate_actions)
            and bool(EMERGENCY.search(sections.immediate_actions[0])),
            "sections": {s: " ".join(item_text(i) for i in getattr(sections, s)) for s in SECTION_NAMES},
        }
    out["gold"] = {s: " ".join(item_text(i) for i in getattr(gold, s)) for s in SECTION_NAMES}
    return out


def ratio(num: np.ndarray, den: np.ndarray, idx: np.ndarray) -> tuple[float | None, list[float] | None]:
    """sum(num)/sum(den) and its bootstrap interval (resamples with no denominator are left out)."""
    if den.sum() == 0:
        return None, None
    sums_n, sums_d = num[idx].sum(axis=1), den[idx].sum(axis=1)
    ok = sums_d > 0
    return float(num.sum() / den.sum()), percentile_ci(sums_n[ok] / sums_d[ok])


def _f1(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0.0)


def summarise(items: Sequence[dict[str, Any]], idx: np.ndarray) -> dict[str, Any]:
    """The report's figures from ``item_scores`` of every item (``idx``: bootstrap resamples of items)."""
    n = len(items)
    if not n:
        return {"n_treatment": 0}
    col = lambda f: np.array([f(it) for it in items], dtype=np.float64)  # noqa: E731
    ones = np.ones(n)
    report: dict[str, Any] = {"n_treatment": n}
    report["schema_valid"], report["schema_valid_ci"] = ratio(col(lambda it: it["valid"]), ones, idx)
    subsets = {
        "allergy_violation_rate": ("has_allergy", "allergy_violation"),
        "duplicate_therapy_rate": ("has_meds", "duplicate"),
        "red_flag_emergency_recall": ("has_flag", "emergency_first"),
    }
    for variant in ("raw", "published"):
        out: dict[str, Any] = {}
        m = np.array([it[variant]["meds"] for it in items], dtype=np.float64)
        p, p_ci = ratio(m[:, 0], m[:, 1], idx)
        r, r_ci = ratio(m[:, 2], m[:, 3], idx)
        # F1 is 0 when names were expected and none were matched (no prediction at all included); it has no
        # value only when there was neither a predicted nor a target name (resamples likewise).
        keep = (m[idx, 1].sum(1) > 0) | (m[idx, 3].sum(1) > 0)
        boot_p = m[idx, 0].sum(1)[keep] / np.maximum(m[idx, 1].sum(1)[keep], 1)
        boot_r = m[idx, 2].sum(1)[keep] / np.maximum(m[idx, 3].sum(1)[keep], 1)
        f1 = None if p is None and r is None else float(_f1(np.array(p or 0.0), np.array(r or 0.0)))
        out.update(
            medication_precision=p,
            medication_precision_ci=p_ci,
            medication_recall=r,
            medication_recall_ci=r_ci,
            medication_f1=f1,
            medication_f1_ci=None if f1 is None or not keep.any() else percentile_ci(_f1(boot_p, boot_r)),
            medication_counts={"predicted": int(m[:, 1].sum()), "target": int(m[:, 3].sum())},
        )
        for name, (has, hit) in subsets.items():
            den = col(lambda it, h=has: it[h])
            num = col(lambda it, v=variant, k=hit: it[v][k]) * den
            out[name], out[f"{name}_ci"] = ratio(num, den, idx)
            out[f"{name}_items"] = int(den.sum())
        rouge: dict[str, Any] = {}
        for s in SECTION_NAMES:
            have = [k for k, it in enumerate(items) if it["gold"][s]]
            if not have:
                rouge[s] = {"rouge_l": None, "rouge_l_ci": None, "items": 0}
                continue
            scores = np.zeros(n)
            scores[have] = rouge_l_scores(
                [items[k][variant]["sections"][s] for k in have], [items[k]["gold"][s] for k in have]
            )
            mask = np.zeros(n)
            mask[have] = 1
            value, ci = ratio(scores, mask, idx)
            rouge[s] = {"rouge_l": value, "rouge_l_ci": ci, "items": len(have)}
        out["section_rouge_l"] = rouge
        report[variant] = out
    return report


def evaluate_outputs(rows: Sequence[dict[str, Any]], texts: Sequence[str], idx: np.ndarray) -> dict[str, Any]:
    """Treatment accuracy of one model's raw texts for ``rows`` (the test split's treatment examples)."""
    return summarise([item_scores(r, t) for r, t in zip(rows, texts, strict=True)], idx)


def reference_outputs(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The targets themselves as outputs: a check of the scorer (every figure at its best), never a result."""
    return [r["messages"][-1]["content"] for r in rows]
