"""Baselines as rows: every treatment and grounding figure for five rows on the same items (issue 17).

- ``extractive``: no model; the rules that build the training targets applied to each row's prompt passages
  (``grounding.extractive_target``), citing them. Targets are built by those rules from passages of the same
  focus, so this row is the bar a model has to clear, not a floor.
- ``empty``: every section empty. It never violates an allergy, never duplicates a drug, never cites wrongly:
  the figures that punish silence (answered on evidence, target items recovered, medication recall) show it.
- ``emergency_constant``: one constant "call 911" action for every patient: red-flag recall 1.0 with an
  emergency false-alarm rate of 1.0.
- ``base`` and ``fine_tuned``: the models. ``treatment``: free greedy generation (the raw text, as trained),
  scored raw and after the safety rules; ``treatment_constrained``: the inference path's schema-constrained,
  grounded generation scored the same way; ``grounding``: that constrained output's citations.

Every row is scored by the same functions with the same bootstrap resamples (seeded by item count), so the rows
of one variant are compared on the same items; each figure is also reported per input variant ("exact",
"reworded", "no_evidence"). ``grounding.distractors_only``: the same rows again with passages about other
foci only (RAFT's distractor case), where the right output abstains.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..common.progress import Progress
from ..common.schemas import Citations, Sections
from ..retrieval.index import BM25Index
from . import grounding as grounding_eval
from . import metrics
from . import treatment as treatment_eval
from .items import EvalItem, distractor_items, variant_of

log = logging.getLogger(__name__)

NO_MODEL_ROWS = ("extractive", "empty", "emergency_constant")
ROW_NAMES = (*NO_MODEL_ROWS, "base", "fine_tuned")


def variant_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(variant_of(r) for r in rows).items()))


def score_row(
    rows: Sequence[EvalItem],
    treatment_outputs: Sequence[treatment_eval.Output],
    grounded: Sequence[tuple[Sections, Citations]],
    index: BM25Index,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    passages = [it.passages for it in rows]
    return {
        "treatment": treatment_eval.evaluate_rows(rows, treatment_outputs, n_boot, seed, passages),
        "grounding": grounding_eval.grounded_report(rows, grounded, index, seed, n_boot),
    }


def no_model_rows(
    rows: Sequence[EvalItem], index: BM25Index, n_boot: int, seed: int
) -> dict[str, dict[str, Any]]:
    """The three rows that need no model, on ``rows`` (``items.build_items``) and on their distractor-only
    copies."""
    distract = distractor_items(rows, index)
    with_evidence = grounding_eval.no_model_outputs(rows, index)
    without = grounding_eval.no_model_outputs(distract, index)
    out = {}
    for name in NO_MODEL_ROWS:
        grounded = with_evidence[name]
        out[name] = score_row(rows, grounded, grounded, index, n_boot, seed)
        out[name]["grounding"]["distractors_only"] = grounding_eval.grounded_scores(
            distract, without[name], index, seed, n_boot
        )
    return out


def model_row(
    model: Any,
    tokenizer: Any,
    rows: Sequence[EvalItem],
    index: BM25Index,
    max_new_tokens: int,
    batch_size: int,
    n_boot: int,
    seed: int,
    name: str = "model",
    free: bool = True,
    distractors: bool = True,
) -> tuple[dict[str, Any], list[str]]:
    """A model's row (and its raw treatment texts): free generation (``free``; off: no such part, no texts),
    constrained grounded generation with the rows' passages and with distractors only."""
    row: dict[str, Any] = {}
    texts: list[str] = []
    if free:
        messages = [it.prompt for it in rows]
        texts, _ = metrics.greedy_generate(
            model, tokenizer, messages, max_new_tokens, batch_size, f"{name}: treatment (free)"
        )
        passages = [it.passages for it in rows]
        row["treatment"] = treatment_eval.evaluate_rows(rows, texts, n_boot, seed, passages)
    row.update(
        constrained_part(
            model, tokenizer, rows, index, max_new_tokens, batch_size, n_boot, seed, name, distractors
        )
    )
    return row, texts


def constrained_part(
    model: Any, tokenizer: Any, rows: Sequence[EvalItem], index: BM25Index, max_new_tokens: int,
    batch_size: int, n_boot: int, seed: int, name: str, distractors: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """The inference path's figures of a model (or, ``tokenizer`` None, a ready generator): constrained
    grounded generation with the rows' passages and (``distractors``) with distractors only, scored as
    published."""
    grounded, calibration = grounding_eval.generated_outputs(
        model, tokenizer, rows, index, max_new_tokens, batch_size, f"{name}: treatment (constrained)"
    )
    passages = [it.passages for it in rows]
    part = {
        "treatment_constrained": treatment_eval.evaluate_rows(rows, grounded, n_boot, seed, passages),
        "grounding": grounding_eval.grounded_report(rows, grounded, index, seed, n_boot),
    }
    part["grounding"]["calibration"] = calibration
    if not distractors:
        return part
    distract = distractor_items(rows, index)
    none, _ = grounding_eval.generated_outputs(
        model, tokenizer, distract, index, max_new_tokens, batch_size, f"{name}: distractors only",
        calibrate=False,
    )  # fmt: skip
    part["grounding"]["distractors_only"] = grounding_eval.grounded_scores(
        distract, none, index, seed, n_boot
    )
    return part


def gguf_row(
    path: str, rows: Sequence[EvalItem], index: BM25Index, max_new_tokens: int, n_boot: int, seed: int
) -> dict[str, Any]:
    """An exported GGUF's row on the same items: only the constrained figures, as llama.cpp serves it (that
    backend decodes under the grammar only, so it has no free-generation figures)."""
    from ..generation.llama_backend import LlamaSectionsGenerator

    gen = LlamaSectionsGenerator(path, max_new_tokens=max_new_tokens)
    return constrained_part(gen, None, rows, index, max_new_tokens, 1, n_boot, seed, f"gguf {path}")


def retrieval_baseline(train: list[dict], gen_rows: list[dict], idx: np.ndarray) -> dict[str, Any]:
    """The answer of the most similar training question, scored like a generated answer."""
    pool = [r for r in train if r["kind"] == "qa"]
    retriever = metrics.TfidfRetriever([r["messages"][1]["content"] for r in pool])
    hyps = []
    with Progress(len(gen_rows), "retrieval baseline") as bar:
        for r in gen_rows:
            hyps.append(pool[retriever.nearest(r["messages"][1]["content"])]["messages"][-1]["content"])
            bar.update()
    res = metrics.text_scores(hyps, [r["messages"][-1]["content"] for r in gen_rows], idx)
    res.update(n_gen=len(gen_rows), method="TF-IDF cosine over training questions")
    log.info(
        "retrieval baseline: BLEU %s, ROUGE-L %s on %d items", res["bleu"], res["rouge_l"], len(gen_rows)
    )
    return res


# --------------------------------------------------------------------------------------------- the table
# (label, part of the row, path inside it); "published" is after the safety rules.
TABLE = (
    ("medication F1 (raw)", "treatment", ("raw", "medication_f1")),
    ("medication F1 (published)", "treatment", ("published", "medication_f1")),
    ("target items recovered", "treatment", ("published", "target_items_recovered")),
    ("answered on evidence", "treatment", ("published", "answered_on_evidence")),
    ("abstained without evidence", "treatment", ("published", "abstained_without_evidence")),
    ("red-flag recall (raw)", "treatment", ("raw", "red_flag_emergency_recall")),
    ("emergency false alarms (raw)", "treatment", ("raw", "emergency_false_alarm_rate")),
    ("allergy violations (raw)", "treatment", ("raw", "allergy_violation_rate")),
    ("duplicate therapy (raw)", "treatment", ("raw", "duplicate_therapy_rate")),
    ("citation precision", "grounding", ("citation_precision",)),
    ("citation recall", "grounding", ("citation_recall",)),
    ("grounded answer on evidence", "grounding", ("answered_on_evidence",)),
    ("abstention (target abstains)", "grounding", ("abstention",)),
    ("abstention (distractors only, raw)", "grounding", ("distractors_only", "abstention")),
    ("abstention (distractors only, published)", "grounding", ("distractors_only", "abstention_published")),
)


def paired_differences(rows: dict[str, dict[str, Any]], n_boot: int, seed: int) -> dict[str, Any]:
    """fine_tuned - base on the same items, for the treatment figures of both outputs (paired bootstrap)."""
    if "base" not in rows or "fine_tuned" not in rows:
        return {}
    return {
        part: treatment_eval.paired_difference(
            rows["base"][part]["_items"], rows["fine_tuned"][part]["_items"], n_boot, seed
        )
        for part in ("treatment", "treatment_constrained")
        if part in rows["base"] and part in rows["fine_tuned"]
    }


def without_items(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The rows as written to the report: per-item scores dropped."""
    return {
        name: {part: {k: v for k, v in fig.items() if k != "_items"} for part, fig in row.items()}
        for name, row in rows.items()
    }


def _get(d: Any, path: Sequence[str]) -> Any:
    for k in path:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _cell(part: Any, path: Sequence[str]) -> str:
    value = _get(part, path)
    if value is None:
        return "-"
    ci = _get(part, [*path[:-1], f"{path[-1]}_ci"])
    return f"{value:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def rows_table(
    rows: dict[str, dict[str, Any]], variant: str | None = None, constrained: bool = False
) -> list[str]:
    """Markdown lines: one column per row, one line per headline figure (``variant``: that subset only). The
    treatment lines of a model row score its free generation, or with ``constrained`` the inference path's
    constrained output (the only output of a ``gguf:`` row, which the free table leaves out)."""
    names = [n for n in ROW_NAMES if n in rows]
    if constrained:
        names += [n for n in rows if n.startswith("gguf:")]

    def treatment(row: dict[str, Any]) -> dict[str, Any]:
        return (constrained and row.get("treatment_constrained")) or row.get("treatment", {})

    lines = ["| figure | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, part, path in TABLE:
        cells = []
        for n in names:
            p = treatment(rows[n]) if part == "treatment" else rows[n].get(part, {})
            if variant is not None and path[0] != "distractors_only":
                p = p.get("by_variant", {}).get(variant, {})
            cells.append(_cell(p, path))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for section in ("medications", "lifestyle", "follow_up", "monitoring", "patient_education"):
        for key, label in (
            ("rouge_l", "ROUGE-L"),
            ("filled_where_target_empty", "filled where target empty"),
        ):
            cells = []
            for n in names:
                p = treatment(rows[n])
                if variant is not None:
                    p = p.get("by_variant", {}).get(variant, {})
                cells.append(_cell(p, ("published", "section_rouge_l", section, key)))
            lines.append(f"| {section}: {label} | " + " | ".join(cells) + " |")
    return lines
