"""Hybrid retrieval against BM25 alone on one thread: index load time, memory, and latency per record.

    python bench/hybrid_speed.py --data-dir data/medquad
    python bench/hybrid_speed.py --data-dir data/medquad --encoder models/all-minilm-l6-v2 --repeats 3
    # plus the passage-encoding rate on 1 and 2 threads, on 512 answer openings spread over the corpus
    python bench/hybrid_speed.py --data-dir data/medquad --encode-sample 512

Records timed: the split's treatment patients (conditions as written) and the consumer-style questions and
symptom-led records (``tests/fixtures/consumer_questions.jsonl``), each through ``retrieve_for_record`` with and
without the encoder on the same loaded index, and, when the queries run on ONNX Runtime
(``medlora.retrieval.query_runtime``), once more with torch encoding them. The encoder's query cache is emptied before every pass, so each
query is encoded as a first request would be. Memory: resident set size after loading BM25 alone and after
attaching the encoder and the passage vectors. Passage-encoding time at index build is read from the index
(``meta.json`` -> ``dense.vectors``: seconds, threads, cores). Exit 2 on a missing index, encoder or vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("OMP_NUM_THREADS", "1")

from medlora.common.cli import UsageError  # noqa: E402
from medlora.common.files import write_json  # noqa: E402
from medlora.common.schemas import PatientRecord  # noqa: E402
from medlora.retrieval import dense, hybrid  # noqa: E402
from medlora.retrieval.hybrid_rules import read_consumer_set  # noqa: E402
from medlora.retrieval.index import INDEX_DIR, load_index, retrieve_for_record  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def records(data_dir: Path, split: str, limit: int) -> tuple[list[PatientRecord], list[PatientRecord]]:
    """The split's treatment patients (a sample of ``limit``) and the consumer-style questions and records."""
    out = []
    with open(data_dir / f"{split}.jsonl", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if r["kind"] == "treatment" and "record" in r:
                out.append(PatientRecord.model_validate(r["record"]))
    step = max(1, len(out) // limit)
    consumer = [
        PatientRecord(symptoms=[row["text"]])
        if "text" in row
        else PatientRecord.model_validate(row["record"])
        for row in read_consumer_set()
    ]
    return out[::step][:limit], consumer


def timed(index, recs: list[PatientRecord], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        if index.dense is not None:
            index.dense.encoder._cache.clear()
        for r in recs:
            s = time.perf_counter()
            retrieve_for_record(r, index)
            times.append(time.perf_counter() - s)
    return sorted(times)


def encoding_rate(encoder, passages, n: int) -> dict:
    """Answer openings per second on 1 and 2 threads (the same sample, batches of ``dense.BATCH``)."""
    import torch

    texts, _ = dense.answer_openings(passages)
    sample = texts[:: max(1, len(texts) // n)][:n]
    out = {"sample": len(sample), "corpus": len(texts)}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        start = time.perf_counter()
        encoder.encode_many(sample, desc=f"encoding a sample on {threads} threads")
        rate = len(sample) / (time.perf_counter() - start)
        out[f"{threads}_threads"] = {"per_s": round(rate, 1), "corpus_min": round(len(texts) / rate / 60, 1)}
    torch.set_num_threads(1)
    return out


def ms(times: list[float], q: float) -> float:
    return round(times[min(len(times) - 1, int(q * len(times)))] * 1000, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data/medquad", help="directory with the splits and index/")
    ap.add_argument("--encoder", default=str(dense.DEFAULT_DIR), help="the sentence encoder folder")
    ap.add_argument("--split", default="test", help="split whose treatment patients are timed")
    ap.add_argument(
        "--records", type=int, default=200, help="treatment patients timed (plus the consumer set)"
    )
    ap.add_argument("--repeats", type=int, default=2, help="timed passes")
    ap.add_argument("--out", default=None, help="write the figures here as JSON as well")
    ap.add_argument(
        "--encode-sample",
        type=int,
        default=0,
        help="also time encoding this many answer openings on 1 and on 2 threads (extrapolated to the corpus)",
    )
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    data_dir = Path(args.data_dir)
    try:
        t0 = time.perf_counter()
        base = rss_mib()
        index = load_index(data_dir, dense=False)
        t1 = time.perf_counter()
        bm25_rss = rss_mib()
        encoder = dense.load_encoder(Path(args.encoder), threads=1)
        if encoder is None or not hybrid.attach(index, data_dir / INDEX_DIR, encoder):
            raise UsageError(
                f"no encoder at {args.encoder} or no passage vectors for it in {data_dir / INDEX_DIR}"
            )
        t2 = time.perf_counter()
        names = ("treatment_patients", "consumer")
        groups = dict(zip(names, records(data_dir, args.split, args.records), strict=True))
    except (UsageError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    hybrid_rss = rss_mib()
    side = index.dense
    timings = {}
    runtime = side.encoder.queries
    for name, recs in groups.items():
        with_dense = timed(index, recs, args.repeats)
        index.dense = None
        alone = timed(index, recs, args.repeats)
        index.dense = side
        timings[name] = {
            "records": len(recs),
            "bm25_alone_ms": {"median": ms(alone, 0.5), "p95": ms(alone, 0.95)},
            "hybrid_ms": {"median": ms(with_dense, 0.5), "p95": ms(with_dense, 0.95)},
            "hybrid_over_bm25_median": round(ms(with_dense, 0.5) / max(1e-9, ms(alone, 0.5)), 2),
        }
        if runtime is not None:  # the same records with torch encoding the queries, in the same run
            side.encoder.queries = None
            on_torch = timed(index, recs, args.repeats)
            side.encoder.queries = runtime
            timings[name]["hybrid_torch_queries_ms"] = {
                "median": ms(on_torch, 0.5),
                "p95": ms(on_torch, 0.95),
            }
            timings[name]["hybrid_torch_queries_over_bm25_median"] = round(
                ms(on_torch, 0.5) / max(1e-9, ms(alone, 0.5)), 2
            )
    out = {
        "repeats": args.repeats,
        "threads": 1,
        "query_encoder": side.encoder.runtime,
        "load_s": {"bm25": round(t1 - t0, 2), "encoder_and_vectors": round(t2 - t1, 2)},
        "rss_mib": {
            "bm25_index": round(bm25_rss - base, 1),
            "encoder_and_vectors": round(hybrid_rss - bm25_rss, 1),
            "vectors_in_memory": round(side.vectors.matrix.nbytes / 2**20, 1),
        },
        "record_ms": timings,
        "index_build_encoding": index.meta.get("dense", {}).get("vectors"),
        "cpu": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    if args.encode_sample > 0:
        out["encoding"] = encoding_rate(side.encoder, index.passages, args.encode_sample)
    print(json.dumps(out, indent=2))
    if args.out:
        write_json(Path(args.out), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
