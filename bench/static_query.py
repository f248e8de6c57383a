"""Static (token-embedding-bag) query encoders distilled from all-MiniLM-L6-v2 against MiniLM itself (issue 29).

    python bench/static_query.py --data-dir data/medquad --static M2V/minilm-static-384 \
        --static M2V/minilm-static-pca256 --static M2V/minilm-static-384-fit --repeats 3 --oracle
    python bench/static_query.py --data-dir data/medquad --static M2V/minilm-static-384 --repeats 5 --no-quality

A static encoder (``model2vec``: each WordPiece token's MiniLM output vector, computed once, SIF-weighted; a text is
the normalised mean of its tokens' vectors) costs microseconds per query against MiniLM's 6 to 7 ms pass on ONNX
Runtime. Distilled outside this project's environment (``model2vec[distill]`` pins transformers < 5.4); its folder
is read here with ``tokenizers`` and ``safetensors`` alone (``StaticEncoder``), no model2vec import.

Options, each on the same loaded index:

- ``minilm``: the index as built (MiniLM query vectors on ONNX Runtime against the stored MiniLM answer vectors);
- ``a:NAME`` (only for a static model of MiniLM's 384 output dimensions, distilled without PCA): static query
  vectors against the stored MiniLM answer vectors;
- ``b:NAME``: static vectors for the queries and for the 16,306 answer openings (encoded here, timed).

For each: the question threshold chosen on the val consumer questions exactly as a rebuild would
(``hybrid_rules.choose_question_threshold``: TPR - FPR, false grounding at most 0.1, ties to the higher; over
0.30..0.90 for MiniLM as a rebuild, over 0.00..0.99 for a static model, whose cosines lie elsewhere), then the
consumer-style set of val and of test measured with it (``bench/retrieval_quality.consumer``: recall@4 on answerable
rows, false grounding on no-answer questions; test is never chosen on). The condition threshold stays the index's
(the consumer rows' conditions are all named by the lexicon, whose evidence is lexical). Agreement with MiniLM:
cosine of the static and the MiniLM query vectors (options ``a``), of the static and the MiniLM answer vectors
(``b`` of a 384-dimension model), and the share of MiniLM's top 10 answers per consumer query found in the option's
top 10. ``--oracle``: the best threshold on test itself for at most 4 of 24 grounded, a bound on what any
threshold could give, never a choice. Latency: every consumer question and record through ``retrieve_for_record`` on one thread, BM25 alone and
each option, the passes interleaved, each option's query cache emptied before each pass, and once more MiniLM with
its cache full (the dense side and the fusion with a free encoder). Exit 2 on a missing index.

The static models measured (``model2vec`` 0.10.0 in a separate environment, from ``models/all-minilm-l6-v2``):
``distill_from_model(model, tokenizer, pca_dims=None, quantize_to="float32")`` (384 dimensions, MiniLM's output
space, SIF 1e-4); the same with ``pca_dims=256``; with ``sif_coefficient=None``; with a vocabulary of 6,985 MedQuAD
words not in WordPiece's; and the first refitted to MiniLM's vectors of the train-split answer openings and
questions (ridge towards the distilled rows, conjugate gradients; the weight chosen by cosine with MiniLM on the
val-split openings and questions, no consumer question or relevance label used).

Measured (full build, one run, one thread, load average 3 on 2 cores): every static option keeps the hybrid within
2x of BM25 alone (1.4x to 1.9x against MiniLM's 5.7x; MiniLM with its queries cached 1.7x: the dense side and the
fusion alone cost about 1.3 ms), but none keeps its quality: val 11 to 18 of 60 answerable at 0 to 4 of 48
grounded against MiniLM's 42 at 4, test 7 to 11 of 62 against 37; their fused ranking without an evidence rule
finds no more than plain BM25 (30 to 35 of 62 on test against MiniLM's 44 and BM25's 35). Not adopted.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from medlora.common.cli import UsageError  # noqa: E402
from medlora.common.files import write_json  # noqa: E402
from medlora.common.schemas import PatientRecord  # noqa: E402
from medlora.retrieval import dense, hybrid, hybrid_rules  # noqa: E402
from medlora.retrieval.hybrid_rules import choose_question_threshold, query_of, read_consumer_set  # noqa: E402
from medlora.retrieval.index import load_index, retrieve_for_record  # noqa: E402


class StaticEncoder:
    """A model2vec folder (``tokenizer.json``, ``model.safetensors`` with ``embeddings``): a text is the
    L2-normalised mean of its tokens' rows (no special tokens, unknown pieces dropped, 512 pieces at most), which
    is what ``model2vec.StaticModel.encode`` computes for a model without weights or token mapping."""

    def __init__(self, directory: str | Path):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        directory = Path(directory)
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(512)
        tensors = load_file(str(directory / "model.safetensors"))
        self.matrix = np.ascontiguousarray(tensors["embeddings"], dtype=np.float32)
        if "weights" in tensors or "mapping" in tensors:
            raise ValueError(f"{directory}: token weights or a token mapping are not supported here")
        unk = getattr(self.tokenizer.model, "unk_token", None)
        self.unk = self.tokenizer.token_to_id(unk) if unk else None
        self.name, self.dim = directory.name, int(self.matrix.shape[1])
        self.digest = hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()
        self.runtime = "static"
        self._cache: dict[str, np.ndarray] = {}

    def _vectors(self, encodings) -> np.ndarray:
        out = np.zeros((len(encodings), self.dim), dtype=np.float32)
        for i, e in enumerate(encodings):
            ids = [t for t in e.ids if t != self.unk]
            if ids:
                v = self.matrix[ids].mean(0)
                out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out

    def encode(self, texts) -> np.ndarray:
        texts = list(texts)
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            enc = self.tokenizer.encode_batch(todo, add_special_tokens=False)
            for t, v in zip(todo, self._vectors(enc), strict=True):
                self._cache[t] = v
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def encode_many(self, texts) -> np.ndarray:
        return self._vectors(self.tokenizer.encode_batch(list(texts), add_special_tokens=False))


def _bench_module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def set_question_threshold(index, t: float) -> None:
    meta = index.meta.setdefault("dense", {})
    meta["thresholds"] = {**meta.get("thresholds", {}), "question": t}
    meta["intents"] = hybrid.INTENTS_VERSION


def top_answers(side: hybrid.DenseSide, text: str, n: int = 10) -> set[int]:
    scores = side.vectors.scores(side.encoder.encode([text])[0])
    return {int(i) for i in np.argsort(-scores)[:n]}


# A static model's cosines lie elsewhere than MiniLM's (its vectors share a large common direction), so its
# threshold is chosen over the whole range; MiniLM keeps the project's grid (0.30..0.90).
WIDE_GRID = tuple(round(0.01 * i, 2) for i in range(100))


ORIGINAL_MAX_FPR = hybrid_rules.MAX_FPR


def quality(index, side, consumer, rows_val, grid=None, oracle=False) -> dict:
    """The question threshold chosen on val with ``side``, then the consumer set of val and test with it."""
    index.dense = side
    saved = hybrid_rules.GRID
    hybrid_rules.GRID = grid or saved
    try:
        chosen = choose_question_threshold(index, rows_val, [])
    finally:
        hybrid_rules.GRID = saved
    set_question_threshold(index, chosen["threshold"])
    out = {"question_threshold": chosen["threshold"], "grid": [min(grid or saved), max(grid or saved)]}
    out["chosen_on_val"] = chosen["val"]
    if oracle:  # the best any threshold could do on test, for the goal's 4 of 24: a bound, never a choice
        hybrid_rules.GRID, hybrid_rules.MAX_FPR = WIDE_GRID, 4 / 24 + 1e-9
        try:
            best = choose_question_threshold(index, read_consumer_set(split="test"), [])
        finally:
            hybrid_rules.GRID, hybrid_rules.MAX_FPR = saved, ORIGINAL_MAX_FPR
        out["oracle_on_test_not_a_choice"] = {"threshold": best["threshold"], **best["val"]}
    for split in ("val", "test"):
        res = consumer(index, split, 4)
        out[split] = {
            name: {g: f"{v.get('count')}/{v['n']}" for g, v in groups.items()}
            for name, groups in res.items()
            if isinstance(groups, dict)
        }
    return out


def ms(times: list[float], q: float) -> float:
    times = sorted(times)
    return round(times[min(len(times) - 1, int(q * len(times)))] * 1000, 3)


# MiniLM with every query vector already in its cache: what the dense side and the fusion cost with a free encoder.
CACHED = "minilm_queries_cached"


def latency(index, sides: dict, records: list[PatientRecord], repeats: int) -> dict:
    """Median and p95 ms per record through ``retrieve_for_record``, BM25 alone and each option, interleaved."""
    sides = {**sides, CACHED: sides["minilm"]}
    times: dict[str, list[float]] = {"bm25_alone": [], **{k: [] for k in sides}}
    for _ in range(repeats):
        for name in times:
            side = sides.get(name)
            index.dense = side
            if side is not None and name != CACHED:
                side.encoder._cache.clear()
            for r in records:
                s = time.perf_counter()
                retrieve_for_record(r, index)
                times[name].append(time.perf_counter() - s)
    base = ms(times["bm25_alone"], 0.5)
    return {
        name: {"median": ms(t, 0.5), "p95": ms(t, 0.95), "over_bm25_median": round(ms(t, 0.5) / base, 2)}
        for name, t in times.items()
    }


def encoder_ms(encoder, texts: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        encoder._cache.clear()
        for t in texts:
            s = time.perf_counter()
            encoder.encode([t])
            times.append(time.perf_counter() - s)
    return ms(times, 0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data/medquad", help="directory with the splits and index/")
    ap.add_argument("--static", action="append", default=[], help="a distilled model2vec folder (repeatable)")
    ap.add_argument("--repeats", type=int, default=2, help="timed passes over the consumer set")
    ap.add_argument("--no-quality", action="store_true", help="latency only")
    ap.add_argument(
        "--oracle",
        action="store_true",
        help="also report the best question threshold on test for at most 4 of 24 grounded (a bound, not a choice)",
    )
    ap.add_argument("--out", default=None, help="write the figures here as JSON as well")
    args = ap.parse_args()
    try:
        index = load_index(args.data_dir)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if index.dense is None:
        print("error: the index has no MiniLM dense side (encoder or vectors missing)", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    minilm = index.dense
    meta_dense = json.loads(json.dumps(index.meta.get("dense", {})))
    rows = read_consumer_set()
    rows_val = read_consumer_set(split="val")
    texts = [query_of(r) for r in rows]
    records = [
        PatientRecord(symptoms=[r["text"]]) if "text" in r else PatientRecord.model_validate(r["record"])
        for r in rows
    ]
    consumer = _bench_module("retrieval_quality").consumer
    ref_q = minilm.encoder.encode(texts)
    ref_top = [top_answers(minilm, t) for t in texts]
    openings, row_of = dense.answer_openings(index.passages)
    sides: dict[str, hybrid.DenseSide] = {"minilm": minilm}
    info: dict[str, dict] = {"minilm": {"query_runtime": minilm.encoder.runtime}}
    for path in args.static:
        enc = StaticEncoder(path)
        q = enc.encode(texts)
        if enc.dim == minilm.vectors.matrix.shape[1]:
            name = f"a:{enc.name}"
            sides[name] = hybrid.DenseSide(enc, minilm.vectors, minilm.row_of)
            cos = (q * ref_q).sum(1)
            info[name] = {"query_cosine_with_minilm": {"min": round(float(cos.min()), 4),
                          "median": round(float(np.median(cos)), 4), "max": round(float(cos.max()), 4)}}  # fmt: skip
        start = time.perf_counter()
        matrix = enc.encode_many(openings)
        seconds = time.perf_counter() - start
        name = f"b:{enc.name}"
        sides[name] = hybrid.DenseSide(enc, dense.Vectors(matrix, {"rows": len(openings)}), row_of)
        info[name] = {"encode_openings_s": round(seconds, 2), "dim": enc.dim}
        if enc.dim == minilm.vectors.matrix.shape[1]:
            cos = (matrix * minilm.vectors.matrix).sum(1)
            info[name]["answer_cosine_with_minilm"] = {"min": round(float(cos.min()), 4),
                                                       "median": round(float(np.median(cos)), 4)}  # fmt: skip
    for name, side in sides.items():
        overlap = [len(top_answers(side, t) & ref) / 10 for t, ref in zip(texts, ref_top, strict=True)]
        info[name]["top10_answers_shared_with_minilm"] = round(float(np.mean(overlap)), 3)
        info[name]["query_encoder_median_ms"] = encoder_ms(side.encoder, texts, args.repeats)
    out: dict = {"consumer_rows": len(rows), "answers": len(openings), "options": info}
    out["latency_ms"] = latency(index, sides, records, args.repeats)
    if not args.no_quality:
        out["quality"] = {}
        for name, side in sides.items():
            grid = None if name == "minilm" else WIDE_GRID
            out["quality"][name] = quality(index, side, consumer, rows_val, grid, args.oracle)
            index.meta["dense"] = json.loads(json.dumps(meta_dense))
    out["index_question_threshold"] = hybrid.thresholds(index)["question"]
    out["load_average"] = os.getloadavg()
    print(json.dumps(out, indent=2))
    if args.out:
        write_json(Path(args.out), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
