"""Retrieval quality on the test treatment patients: recall@k and false grounding, beside plain BM25.

    python download_model.py --skip-model --medquad ../shared/data/medquad --tokenizer ../shared/tinyllama/tokenizer.model
    python bench/retrieval_quality.py --data-dir data/medquad --out bench/results/retrieval_quality.json
    # plus TPR/FPR per condition length over every test focus and every test no-evidence topic (~3 min)
    python bench/retrieval_quality.py --data-dir data/medquad --medquad ../shared/data/medquad
    # the consumer-style questions and symptom-led records: BM25, dense and hybrid side by side
    python bench/retrieval_quality.py --data-dir data/medquad --consumer test
    # the question threshold chosen on the val consumer questions, as a rebuild would store it
    python bench/retrieval_quality.py --data-dir data/medquad --split val --consumer val --choose-question

Records: the test split's treatment rows, by ``variant`` ("exact": the condition is the focus name; "reworded":
a MedQuAD synonym, an abbreviation the answers define, a lay name or a misspelling; "no_evidence": a real topic
with no evidence in the index). Each record is measured on the condition under test (its first; the synthetic
comorbidities such as hypertension have evidence of their own and would hide whether the topic was grounded).
recall@k: share of exact/reworded records with a passage of their focus among the k passages returned; false
grounding: share of no-evidence records that get any passage. Two systems on the same records:
``retrieve_for_record`` (the project's rules) and plain BM25 over the record's raw text (conditions, symptoms
and notes joined), which never abstains; with the sentence encoder at hand (``medlora.retrieval.hybrid``) the rules run
with it ("rules") and without it ("rules_bm25_alone").

``--consumer SPLIT``: the consumer-style set (``tests/fixtures/consumer_questions.jsonl``: questions and symptom-led
records as people write them, and questions MedQuAD has no answer for). recall@k: a passage of a gold focus among
those returned; false grounding: a no-answer question that gets any passage. Systems: plain BM25 over the text
(never abstains), the project's rules on BM25 alone, the encoder alone (cosine ranking, evidence by the val
threshold), the hybrid (the project's rules with the encoder), and the hybrid's fused ranking with no evidence
rule ("hybrid_ranking", comparable to plain BM25, which never abstains either). A question goes in as a record
whose only symptom is the question. Exit 2 on a missing data directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from medlora.common.cli import UsageError  # noqa: E402
from medlora.common.files import write_json  # noqa: E402
from medlora.common.schemas import PatientRecord  # noqa: E402
from medlora.data.medquad import focus_key  # noqa: E402
from medlora.retrieval.index import load_index, retrieve_for_record  # noqa: E402


def raw_text(record: PatientRecord) -> str:
    return " ".join([*record.conditions, *record.symptoms, record.notes or ""])


def measure(rows: list[dict], index, k: int) -> dict:
    tally: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    start = time.perf_counter()
    for r in rows:
        record = PatientRecord.model_validate(r["record"])
        record = record.model_copy(update={"conditions": record.conditions[:1]})
        gold = focus_key(r["focus"])
        systems = {
            "rules": [h.passage for h in retrieve_for_record(record, index, k)],
            "plain_bm25": [h.passage for h in index.search(raw_text(record), k)],
        }
        if index.dense is not None:
            systems["rules_bm25_alone"] = [h.passage for h in without_dense(index, record, k)]
        groups = [r["variant"]] + ([f"reworded:{r['reworded_kind']}"] if r.get("reworded_kind") else [])
        for name, passages in systems.items():
            found = any(focus_key(p.focus) == gold for p in passages)
            for g in groups:
                t = tally[name][g]
                t["n"] += 1
                t["grounded"] += bool(passages)
                t["found"] += found
    out: dict = {"k": k, "records": len(rows), "seconds": round(time.perf_counter() - start, 1)}
    for name, groups in tally.items():
        out[name] = {}
        for g, t in sorted(groups.items()):
            key = "false_grounding" if g == "no_evidence" else f"recall@{k}"
            value = t["grounded"] if g == "no_evidence" else t["found"]
            out[name][g] = {"n": t["n"], key: round(value / t["n"], 4), "count": value}
    return out


def without_dense(index, record: PatientRecord, k: int) -> list:
    """The project's rules on BM25 alone, on the same loaded index."""
    side, index.dense = index.dense, None
    try:
        return retrieve_for_record(record, index, k)
    finally:
        index.dense = side


def top_answers(hits: list, k: int) -> list:
    out, pairs = [], set()
    for h in hits:
        if h.passage.pair_id not in pairs:
            out.append(h.passage)
            pairs.add(h.passage.pair_id)
    return out[:k]


def consumer(index, split: str, k: int) -> dict:
    """recall@k and false grounding on the consumer-style set, per system and kind of row."""
    from medlora.retrieval.hybrid import retrieve_for_question
    from medlora.retrieval.hybrid import search as hybrid_search
    from medlora.retrieval.hybrid_rules import query_of, read_consumer_set

    rows = read_consumer_set(split=split)
    tally: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for row in rows:
        record = (
            PatientRecord(symptoms=[row["text"]])
            if "text" in row
            else PatientRecord.model_validate(row["record"])
        )
        systems = {
            "plain_bm25": [h.passage for h in index.search(raw_text(record), k)],
            "rules_bm25_alone": [h.passage for h in without_dense(index, record, k)],
        }
        if index.dense is not None:
            systems["dense"] = [
                h.passage for h in retrieve_for_question(index, query_of(row), k, mode="dense")
            ]
            systems["hybrid"] = [h.passage for h in retrieve_for_record(record, index, k)]
            # The fused ranking with no evidence rule: the ranking alone, comparable to plain BM25's
            systems["hybrid_ranking"] = top_answers(hybrid_search(index, query_of(row), 4 * k), k)
        gold = {focus_key(g) for g in row["gold"]}
        group = ("question" if "text" in row else "record") if gold else "no_answer"
        for name, passages in systems.items():
            for g in (group, "answerable") if gold else (group,):
                t = tally[name][g]
                t["n"] += 1
                t["grounded"] += bool(passages)
                t["found"] += any(focus_key(p.focus) in gold for p in passages)
    out: dict = {"split": split, "rows": len(rows), "k": k}
    for name, groups in tally.items():
        out[name] = {}
        for g, t in groups.items():
            key, value = (
                ("false_grounding", t["grounded"]) if g == "no_answer" else (f"recall@{k}", t["found"])
            )
            out[name][g] = {"n": t["n"], key: round(value / t["n"], 4), "count": value}
    return out


def chest_pain_example(index, k: int) -> list[str]:
    path = ROOT / "examples" / "patients" / "chest_pain_low_spo2.json"
    record = PatientRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))
    return [h.passage.focus for h in retrieve_for_record(record, index, k)]


def length_rates(index, rows: list[dict], split: str, source: Path) -> dict:
    """TPR/FPR per condition length, computed as on val (``retrieval_rules``) for this split's foci."""
    import random

    from medlora.data import medquad
    from medlora.datasets import patients
    from medlora.retrieval import rules as retrieval_rules

    foci = sorted({r["focus"] for r in rows if r["variant"] != "no_evidence"})
    rng = random.Random(f"bench-{split}-rates")
    positives = [(f, focus_key(f)) for f in foci]
    positives += [
        (w[0], focus_key(f)) for f in foci if (w := patients.reworded_condition(f, index.lexicon, rng))
    ]
    topics = retrieval_rules.no_evidence_topics(medquad.read_focus_annotations(source), index)[split]
    pos, neg = retrieval_rules.evidence_cases(index, positives, [(t, None) for t in topics])
    return retrieval_rules.rates(pos, neg, index.evidence_rule)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data/medquad", help="directory with test.jsonl and index/")
    ap.add_argument("--split", default="test", help="split whose treatment rows are measured (val or test)")
    ap.add_argument("--k", type=int, default=4, help="passages per record")
    ap.add_argument("--out", default=None, help="write the figures here as JSON as well")
    ap.add_argument(
        "--dense-weight",
        type=float,
        default=None,
        help="weight of the encoder's ranking in the fusion (default: medlora.retrieval.hybrid.DENSE_WEIGHT)",
    )
    ap.add_argument(
        "--consumer",
        default=None,
        choices=("val", "test"),
        help="also measure the consumer-style questions and records of this split (tests/fixtures)",
    )
    ap.add_argument(
        "--medquad",
        default=None,
        help="the MedQuAD XML source: also report TPR/FPR per condition length over all of the split's foci "
        "(exact and reworded) and all of its no-evidence topics, as the rule was chosen on val",
    )
    ap.add_argument(
        "--choose-question",
        action="store_true",
        help="also choose the question threshold on the val consumer questions (as a rebuild would) and print it; "
        "val only",
    )
    ap.add_argument(
        "--question-threshold",
        type=float,
        default=None,
        help="measure with this question threshold instead of the one in force (a what-if, never a choice on test)",
    )
    args = ap.parse_args()
    if args.choose_question and args.consumer != "val":
        print("error: --choose-question chooses on val only: add --consumer val", file=sys.stderr)
        return 2
    try:
        path = Path(args.data_dir) / f"{args.split}.jsonl"
        if not path.is_file():
            raise UsageError(f"{path} not found: build the data with download_model.py first")
        index = load_index(args.data_dir)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with open(path, encoding="utf-8") as fh:
        rows = [r for line in fh if (r := json.loads(line))["kind"] == "treatment" and "variant" in r]
    if not rows:
        print(f"error: {path} holds no treatment rows with a variant: rebuild the data", file=sys.stderr)
        return 2
    if args.dense_weight is not None:
        from medlora.retrieval import hybrid

        hybrid.DENSE_WEIGHT = args.dense_weight
    if args.question_threshold is not None:
        from medlora.retrieval.hybrid import INTENTS_VERSION

        dense_meta = index.meta.setdefault("dense", {})
        dense_meta["thresholds"] = {**dense_meta.get("thresholds", {}), "question": args.question_threshold}
        dense_meta["intents"] = INTENTS_VERSION
    result = {
        "split": args.split,
        "evidence_rule": index.evidence_rule,
        "edit_rule": index.meta.get("edit_rule"),
        **measure(rows, index, args.k),
    }
    result["encoder"] = "attached" if index.dense is not None else "absent: BM25 alone"
    result["chest_pain_example"] = chest_pain_example(index, args.k)
    if args.consumer:
        result["consumer"] = consumer(index, args.consumer, args.k)
    if args.choose_question and index.dense is not None:
        from medlora.retrieval.hybrid import thresholds
        from medlora.retrieval.hybrid_rules import choose_question_threshold, read_consumer_set

        result["question_threshold"] = {
            "in_force": thresholds(index)["question"],
            "chosen_on_val": choose_question_threshold(index, read_consumer_set(split="val"), []),
        }
    if args.medquad:
        result["rates_per_length"] = length_rates(index, rows, args.split, Path(args.medquad))
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(Path(args.out), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
