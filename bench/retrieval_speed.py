"""The passage index: build time, save size, load time, query latency, and retrieval quality on held-out foci.

    # the full MedQuAD collection with TinyLlama's tokenizer (the issue's targets: build < 30 s, query < 10 ms)
    python bench/retrieval_speed.py

    # another source or tokenizer, more queries timed
    python bench/retrieval_speed.py --medquad ../shared/data/medquad --tokenizer ../shared/tinyllama/tokenizer.model --repeats 5

The split is the data stage's (seed 42, val 5%, test 10%). Timed: cutting answers into passages of at most 128
tokens (tokenizer included), building bm25s, saving, loading, one query (the test foci's condition queries,
"<focus> treatment"), and one record retrieval (``retrieve_for_record``). Measured: recall@k of the gold focus
by plain BM25 (no focus-name match) on the test foci, and,
for the QA-examples decision, how often a training question's own answer is in its top 4 passages. Nothing is
written to models/ or data/; results go to bench/results/retrieval_speed.json.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import SHARED, check_output, environment, median, table, write_results  # noqa: E402

from medlora.common.cli import UsageError, run_stage  # noqa: E402
from medlora.common.schemas import PatientRecord  # noqa: E402
from medlora.data import medquad  # noqa: E402
from medlora.data.passages import build_passages, pair_id  # noqa: E402
from medlora.evaluation.grounding import recall_at_k  # noqa: E402
from medlora.retrieval import index as retrieval  # noqa: E402

log = logging.getLogger("bench.retrieval")


@dataclass
class RetrievalBenchConfig:
    medquad: str = field(default=str(SHARED / "data" / "medquad"), metadata={"help": "MedQuAD XML directory"})
    tokenizer: str = field(
        default=str(SHARED / "tinyllama" / "tokenizer.model"), metadata={"help": "TinyLlama tokenizer.model"}
    )
    seed: int = field(default=42, metadata={"help": "the data stage's split seed"})
    repeats: int = field(default=3, metadata={"help": "timed passes over the queries (median reported)"})
    qa_sample: int = field(default=2000, metadata={"help": "training questions checked for their own answer"})
    output: str = field(
        default=str(ROOT / "bench" / "results" / "retrieval_speed.json"),
        metadata={"help": "where the JSON goes"},
    )

    def validate(self) -> None:
        for what, p in (("MedQuAD", self.medquad), ("tokenizer", self.tokenizer)):
            if not Path(p).exists():
                raise UsageError(f"{what} not found: {p}")
        if self.repeats < 1 or self.qa_sample < 0:
            raise UsageError("--repeats must be >= 1 and --qa-sample >= 0")


def main(cfg: RetrievalBenchConfig) -> dict:
    from medlora.model.loading import tinyllama_tokenizer

    out_path = check_output(cfg.output)
    tok = tinyllama_tokenizer(cfg.tokenizer)
    pairs, _ = medquad.deduplicate(medquad.read_source(Path(cfg.medquad), medquad.ReadReport()))
    split_pairs = medquad.split_by_focus(pairs, 0.05, 0.10, cfg.seed)

    t0 = time.perf_counter()
    passages = build_passages(split_pairs, tok)
    t1 = time.perf_counter()
    index = retrieval.BM25Index.build(passages)
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "index")
        t3 = time.perf_counter()
        size = sum(f.stat().st_size for f in (Path(tmp) / "index").rglob("*") if f.is_file())
        loaded = retrieval.BM25Index.load(Path(tmp) / "index")
        t4 = time.perf_counter()
    test_foci = sorted({p.focus for p in split_pairs["test"]})

    queries = [retrieval.condition_query(f) for f in test_foci]
    records = [PatientRecord(conditions=[f], symptoms=["fatigue"]) for f in test_foci]
    q_times, r_times = [], []
    for _ in range(cfg.repeats):
        for q in queries:
            s = time.perf_counter()
            loaded.search(q, retrieval.DEFAULT_K)
            q_times.append(time.perf_counter() - s)
        for r in records:
            s = time.perf_counter()
            retrieval.retrieve_for_record(r, loaded)
            r_times.append(time.perf_counter() - s)
    q_times.sort()
    recall = {k: recall_at_k(loaded, test_foci, k) for k in (1, 4, 10)}
    # Would QA prompts with passages teach copying? The question's own answer among its top 4 (train only).
    train_qa = split_pairs["train"][:: max(1, len(split_pairs["train"]) // max(1, cfg.qa_sample))][
        : cfg.qa_sample
    ]
    own = sum(
        any(h.passage.pair_id == pair_id(p) for h in loaded.search(p.question, 4, splits=("train",)))
        for p in train_qa
    )
    lengths = sorted(p.n_tokens for p in passages)
    result = {
        "passages": len(passages),
        "passage_tokens": {"median": lengths[len(lengths) // 2], "max": lengths[-1]},
        "build_passages_s": round(t1 - t0, 2),
        "build_bm25_s": round(t2 - t1, 2),
        "save_s": round(t3 - t2, 2),
        "load_s": round(t4 - t3, 2),
        "index_mib": round(size / 2**20, 1),
        "query_ms": {
            "median": round(median(q_times) * 1000, 3),
            "p95": round(q_times[int(0.95 * len(q_times))] * 1000, 3),
        },
        "record_ms_median": round(median(r_times) * 1000, 3),
        "recall_at_k_test_foci": {str(k): v["recall"] for k, v in recall.items()},
        "test_foci": len(test_foci),
        # Speed only: this bench chooses no rule on val (download_model.py does; bench/retrieval_quality.py
        # measures recall and false grounding with it), so records here run under the fallback thresholds.
        "evidence_rule": {"thresholds": loaded.evidence_rule, "chosen_on": "fallback (not chosen here)"},
        "qa_own_answer_in_top4": {"questions": len(train_qa), "share": round(own / max(1, len(train_qa)), 4)},
        "environment": environment("cpu", 1),
    }
    rows = [
        ["passages (<= 128 tokens)", len(passages)],
        ["cut answers into passages (s)", result["build_passages_s"]],
        ["build bm25s index (s)", result["build_bm25_s"]],
        ["save / load (s)", f"{result['save_s']} / {result['load_s']}"],
        ["index on disk (MiB)", result["index_mib"]],
        ["one query, median / p95 (ms)", f"{result['query_ms']['median']} / {result['query_ms']['p95']}"],
        ["one record (conditions + symptoms), median (ms)", result["record_ms_median"]],
        [
            "recall@1 / @4 / @10, test foci",
            " / ".join(str(result["recall_at_k_test_foci"][k]) for k in ("1", "4", "10")),
        ],
        ["evidence rule", "fallback thresholds (see bench/retrieval_quality.py)"],
        ["QA: own answer in top 4", result["qa_own_answer_in_top4"]["share"]],
    ]
    print(table(["figure", "value"], rows))
    write_results(out_path, result)
    return result


if __name__ == "__main__":
    sys.exit(run_stage(main, RetrievalBenchConfig, description=__doc__))
