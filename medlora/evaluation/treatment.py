"""Treatment accuracy, measured honestly: the project's answer to the original card's "87% accuracy on
medical treatment tasks" (DESIGN.md, "Metrics": treatment accuracy).

Items are the test split's treatment examples: held-out foci (never seen in training), each with a synthetic
patient (``medlora.datasets.patients``) and a target built from the focus's sourced sections by the inference rules
(``medlora.datasets.treatment``). A model's output is scored twice: **raw** (what the model wrote, before any rule)
and **published** (what a user sees: the grounding check ``medlora.grounding.check.check_output`` against the row's
passages when they are given, then ``medlora.safety.rules.apply_safety``, as ``medlora.serving.recommender`` does). Per item:

- medications: a predicted medication matches a target one when they share an ingredient, or one names a drug
  class the other belongs to (``medlora.clinical.drugs``: "Advil" matches "ibuprofen", "ibuprofen" matches "NSAIDs");
  precision, recall and F1 are micro-averaged over items (sums of matches over sums of names);
- ROUGE-L F1 per section, over the items whose target section is not empty (section items joined);
- allergy violation: the output names a drug the patient is allergic to (directly or by class), over patients
  with an allergy; duplicate therapy: it prescribes a drug the patient already takes, over patients on drugs;
- red-flag recall: the first immediate action is an emergency action, over patients whose record raises a red
  flag; beside it the **emergency false-alarm rate**, the same test over patients whose record raises none (a
  constant "call 911" scores recall 1.0 and false alarms 1.0);
- per section, **filled where the target is empty** (the share of items whose target section is empty but the
  output's is not) beside the ROUGE-L where it is not: writing where the sources say nothing costs;
- **answered on evidence**: the share of items whose target has content beyond the safety actions where the
  output has any (silence costs), and **abstained without evidence**, the share of items whose target abstains
  where the output says nothing beyond the safety actions;
- **target items recovered**: the share of target items (safety actions excepted) that some output item of
  the same section carries (medications by the matching above, other items by ``grounding.supports``: 60% of
  the target item's content words in the output section);
- schema validity: the raw text parses as the output schema (an unparsable output counts as empty sections).

Every figure is reported over all items and per ``variant`` of the test rows ("exact": the condition is the
focus name, "reworded", "no_evidence"; a row without the field counts as "exact"), see ``by_variant``.

Every figure has a bootstrap 95% interval from resampling items (the same resamples for base and fine-tuned).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..clinical import drugs
from ..common.schemas import (
    MAX_ITEMS,
    SECTION_NAMES,
    Citations,
    PatientRecord,
    Sections,
    item_text,
    parse_any_sections,
)
from ..data.passages import Passage
from ..grounding.check import check_output
from ..grounding.support import supports
from ..safety.rules import SafetyFacts, SafetyResult, apply_safety
from .items import CONTENT_SECTIONS, EvalItem, as_items, has_content, parse_target
from .metrics import rouge_l_scores
from .stats import bootstrap_indices, percentile_ci, ratio_ci

EMERGENCY = re.compile(r"\bemergency\b|\b(?:911|999|112)\b|\bambulance\b", re.I)


def parse_cited(text: str) -> tuple[Sections, Citations] | None:
    """A model's text as ``Sections`` and its citations, or None when it is not valid output."""
    try:
        return parse_any_sections(json.loads(text))
    except (ValueError, TypeError):  # json and pydantic errors are ValueErrors; a JSON list is a TypeError
        return None


def parse_output(text: str) -> Sections | None:
    """A model's text as ``Sections`` (plain or with citations), or None when it is not valid output."""
    parsed = parse_cited(text)
    return parsed[0] if parsed else None


Output = str | Sections | tuple[Sections, Citations]


def target_sections(row: Mapping[str, Any]) -> Sections:
    return parse_target(row)[0]


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


def items_recovered(pred: Sections, gold: Sections) -> tuple[int, int]:
    """(target items some output item of the same section carries, target items), safety actions excepted."""
    found = total = 0
    for s in CONTENT_SECTIONS:
        mine = getattr(pred, s)
        text = " ".join(item_text(i) for i in mine)
        for g in getattr(gold, s):
            total += 1
            if s == "medications":
                gm = _drug(g.name)
                found += any(medications_match(_drug(m.name), gm, m.name, g.name) for m in mine)
            else:
                found += bool(mine) and supports(g, text, s)
    return found, total


def _published_audit(record: PatientRecord, first: SafetyResult, facts: SafetyFacts) -> tuple[bool, bool]:
    """(allergy violation, duplicate therapy) that the safety rules find when run again on their own output.
    They remove every item with an allergy conflict and flag duplicates without removing anything, so on their
    output they find no conflict and the same duplicates; only when the emergency action they insert pushed an
    item out of a full ``immediate_actions`` (``MAX_ITEMS``) are the sections different, and then they run."""
    if first.flag_codes and len(first.sections.immediate_actions) >= MAX_ITEMS:
        audit = apply_safety(record, first.sections, facts)
        return bool(audit.safety.allergy_conflicts), bool(audit.duplicates)
    return False, bool(first.duplicates)


def item_scores(
    row: EvalItem | Mapping[str, Any], output: Output, passages: Sequence[Passage] | None = None
) -> dict[str, Any]:
    """Everything one output (the model's raw text, or sections with their citations that a constrained or
    no-model row produced) contributes, raw and published. ``row``: the test item (or row); ``passages``: its
    prompt passages; given, the published sections are those the grounding check keeps (what inference
    publishes), else the raw ones."""
    (item,) = as_items([row])
    record, gold, facts = item.record, item.target, item.facts
    if record is None or gold is None or facts is None:
        raise ValueError("a treatment row has a record and a target")
    if isinstance(output, str):
        parsed = parse_cited(output)
    else:
        parsed = output if isinstance(output, tuple) else (output, {})
    raw, cites = parsed if parsed else (None, {})
    out: dict[str, Any] = {
        "valid": raw is not None,
        "variant": item.variant,
        "has_allergy": bool(record.allergies),
        "has_meds": bool(record.medications),
        "has_flag": item.has_flag,
        "no_flag": not item.has_flag,
        "evidence": item.evidence,
        "no_evidence": not item.evidence,
    }
    raw = raw or Sections()
    concerned = item.concerns if passages is not None and len(passages) == len(item.passages) else None
    checked = (
        raw
        if passages is None
        else check_output(record, raw, cites, passages, facts.drugs, concerned).sections
    )
    # The safety rules run once for what is published; the raw audit is that same run when nothing was checked.
    first = apply_safety(record, checked, facts)
    raw_audit = first if passages is None else apply_safety(record, raw, facts)
    audits = {
        "raw": (bool(raw_audit.safety.allergy_conflicts), bool(raw_audit.duplicates)),
        "published": _published_audit(record, first, facts),
    }
    for name, sections in (("raw", raw), ("published", first.sections)):
        out[name] = {
            "meds": medication_counts(sections, gold),
            "allergy_violation": audits[name][0],
            "duplicate": audits[name][1],
            "emergency_first": bool(sections.immediate_actions)
            and bool(EMERGENCY.search(sections.immediate_actions[0])),
            "sections": {s: " ".join(item_text(i) for i in getattr(sections, s)) for s in SECTION_NAMES},
            "answered": has_content(sections),
            "recovered": items_recovered(sections, gold),
        }
        out[name]["silent"] = not out[name]["answered"]
    out["gold"] = {s: " ".join(item_text(i) for i in getattr(gold, s)) for s in SECTION_NAMES}
    return out


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
    report["schema_valid"], report["schema_valid_ci"] = ratio_ci(col(lambda it: it["valid"]), ones, idx)
    subsets = {
        "allergy_violation_rate": ("has_allergy", "allergy_violation"),
        "duplicate_therapy_rate": ("has_meds", "duplicate"),
        "red_flag_emergency_recall": ("has_flag", "emergency_first"),
        "emergency_false_alarm_rate": ("no_flag", "emergency_first"),
        "answered_on_evidence": ("evidence", "answered"),
        "abstained_without_evidence": ("no_evidence", "silent"),
    }
    for variant in ("raw", "published"):
        out: dict[str, Any] = {}
        m = np.array([it[variant]["meds"] for it in items], dtype=np.float64)
        p, p_ci = ratio_ci(m[:, 0], m[:, 1], idx)
        r, r_ci = ratio_ci(m[:, 2], m[:, 3], idx)
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
        rec = np.array([it[variant]["recovered"] for it in items], dtype=np.float64)
        out["target_items_recovered"], out["target_items_recovered_ci"] = ratio_ci(rec[:, 0], rec[:, 1], idx)
        out["target_items"] = int(rec[:, 1].sum())
        for name, (has, hit) in subsets.items():
            den = col(lambda it, h=has: it[h])
            num = col(lambda it, v=variant, k=hit: it[v][k]) * den
            out[name], out[f"{name}_ci"] = ratio_ci(num, den, idx)
            out[f"{name}_items"] = int(den.sum())
        rouge: dict[str, Any] = {}
        for s in SECTION_NAMES:
            have = [k for k, it in enumerate(items) if it["gold"][s]]
            empty = np.array([not it["gold"][s] for it in items], dtype=np.float64)
            filled = np.array([bool(it[variant]["sections"][s]) for it in items], dtype=np.float64)
            fill, fill_ci = ratio_ci(filled * empty, empty, idx)
            rouge[s] = {"rouge_l": None, "rouge_l_ci": None, "items": len(have)}
            rouge[s].update(
                filled_where_target_empty=fill,
                filled_where_target_empty_ci=fill_ci,
                target_empty_items=int(empty.sum()),
            )
            if not have:
                continue
            scores = np.zeros(n)
            scores[have] = rouge_l_scores(
                [items[k][variant]["sections"][s] for k in have], [items[k]["gold"][s] for k in have]
            )
            rouge[s]["rouge_l"], rouge[s]["rouge_l_ci"] = ratio_ci(scores, 1 - empty, idx)
        out["section_rouge_l"] = rouge
        report[variant] = out
    return report


def evaluate_outputs(
    rows: Sequence[EvalItem | Mapping[str, Any]], outputs: Sequence[Output], idx: np.ndarray
) -> dict[str, Any]:
    """Treatment accuracy of one row's outputs (raw texts or sections) for ``rows`` (the test split's treatment
    items), over all items; ``idx``: bootstrap resamples of the items."""
    return summarise([item_scores(r, t) for r, t in zip(as_items(rows), outputs, strict=True)], idx)


def by_variant(
    items: Sequence[Any], variants: Sequence[str], report, n_boot: int, seed: int
) -> dict[str, Any]:
    """``report(items of one variant, their bootstrap indices)`` for every variant present; the same seed for
    every row, so rows compared on the same variant are resampled alike (paired)."""
    out = {}
    for v in sorted(set(variants)):
        sub = [it for it, w in zip(items, variants, strict=True) if w == v]
        out[v] = report(sub, bootstrap_indices(len(sub), n_boot, seed))
    return out


def evaluate_rows(
    rows: Sequence[EvalItem | Mapping[str, Any]],
    outputs: Sequence[Output],
    n_boot: int,
    seed: int,
    passages: Sequence[Sequence[Passage]] | None = None,
) -> dict[str, Any]:
    """Every treatment figure over all rows and per variant ("exact", "reworded", "no_evidence"); the per-item
    scores stay under ``_items`` for paired comparisons (drop keys starting with "_" before writing).
    ``passages``: each row's prompt passages, so that "published" is what the grounding check lets through."""
    per_row = passages if passages is not None else [None] * len(rows)
    items = [item_scores(r, t, p) for r, t, p in zip(as_items(rows), outputs, per_row, strict=True)]
    report = summarise(items, bootstrap_indices(len(items), n_boot, seed))
    report["by_variant"] = by_variant(items, [it["variant"] for it in items], summarise, n_boot, seed)
    report["_items"] = items
    return report


# (figure, numerator, denominator) per item; the figures a paired comparison of two models reports.
PAIRED = (
    ("medication_precision", lambda it, v: it[v]["meds"][0], lambda it, v: it[v]["meds"][1]),
    ("medication_recall", lambda it, v: it[v]["meds"][2], lambda it, v: it[v]["meds"][3]),
    ("target_items_recovered", lambda it, v: it[v]["recovered"][0], lambda it, v: it[v]["recovered"][1]),
    ("answered_on_evidence", lambda it, v: it["evidence"] * it[v]["answered"], lambda it, v: it["evidence"]),
    ("abstained_without_evidence", lambda it, v: it["no_evidence"] * it[v]["silent"],
     lambda it, v: it["no_evidence"]),
    ("red_flag_emergency_recall", lambda it, v: it["has_flag"] * it[v]["emergency_first"],
     lambda it, v: it["has_flag"]),
    ("emergency_false_alarm_rate", lambda it, v: it["no_flag"] * it[v]["emergency_first"],
     lambda it, v: it["no_flag"]),
    ("allergy_violation_rate", lambda it, v: it["has_allergy"] * it[v]["allergy_violation"],
     lambda it, v: it["has_allergy"]),
)  # fmt: skip


def paired_difference(
    a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]], n_boot: int, seed: int
) -> dict[str, Any]:
    """``b - a`` for each figure in ``PAIRED``, raw and published, with a paired bootstrap interval: both
    models' ``item_scores`` of the same rows, resampled together."""
    if len(a) != len(b) or not a:
        return {}
    idx = bootstrap_indices(len(a), n_boot, seed)
    out: dict[str, Any] = {}
    for v in ("raw", "published"):
        out[v] = {}
        for name, num, den in PAIRED:
            arr = {
                k: np.array([f(it, v) for it in items], dtype=np.float64)
                for k, items, f in (("na", a, num), ("da", a, den), ("nb", b, num), ("db", b, den))
            }
            if arr["da"].sum() == 0 or arr["db"].sum() == 0:
                out[v][name], out[v][f"{name}_ci"] = None, None
                continue
            sa, sb = arr["da"][idx].sum(1), arr["db"][idx].sum(1)
            ok = (sa > 0) & (sb > 0)
            boot = arr["nb"][idx].sum(1)[ok] / sb[ok] - arr["na"][idx].sum(1)[ok] / sa[ok]
            out[v][name] = float(arr["nb"].sum() / arr["db"].sum() - arr["na"].sum() / arr["da"].sum())
            out[v][f"{name}_ci"] = percentile_ci(boot)
    return out


def reference_outputs(rows: Sequence[EvalItem | Mapping[str, Any]]) -> list[str]:
    """The targets themselves as outputs: a check of the scorer (every figure at its best), never a result."""
    return [(r.row if isinstance(r, EvalItem) else r)["messages"][-1]["content"] for r in rows]
