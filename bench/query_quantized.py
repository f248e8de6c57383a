"""The query encoder's ONNX graph quantized to int8 (ONNX Runtime dynamic quantization) against fp32, one thread.

    python bench/query_quantized.py --encoder models/all-minilm-l6-v2

Needs the fp32 export a hybrid query has already made (``~/.cache/medlora/onnx/``, ``medlora.retrieval.
query_runtime``). Three quantized variants are written beside it into ``--out``; each encodes the consumer-style
questions and records (``tests/fixtures/consumer_questions.jsonl``) one at a time, twice. Reported per variant:
the smallest and 5th-percentile cosine with the fp32 vector, and the median milliseconds per query. The
thresholds of evidence by meaning were chosen on fp32 vectors, so a variant is only worth adopting where its
vectors stay within the query runtime's check (cosine 0.9999). Exit 2 without the encoder or the export.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from medlora.retrieval.hybrid_rules import query_of, read_consumer_set  # noqa: E402
from medlora.retrieval.query_runtime import OnnxQueries, cache_dir  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="models/all-minilm-l6-v2", help="the sentence-transformers folder")
    ap.add_argument("--out", default="/tmp/medlora-quantized", help="where the quantized graphs are written")
    args = ap.parse_args()
    exports = sorted(cache_dir().glob("*.onnx"))
    if not Path(args.encoder, "tokenizer.json").is_file() or not exports:
        print(
            f"error: needs {args.encoder} and an fp32 export in {cache_dir()} (run one hybrid query)",
            file=sys.stderr,
        )
        return 2
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.encoder)
    texts = [query_of(r) for r in read_consumer_set()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = {"fp32": exports[-1]}
    settings = {
        "int8 per channel": {"per_channel": True, "weight_type": QuantType.QInt8},
        "uint8 per tensor": {"per_channel": False, "weight_type": QuantType.QUInt8},
        "int8 per channel, reduced range": {
            "per_channel": True,
            "reduce_range": True,
            "weight_type": QuantType.QInt8,
        },
    }
    for i, (name, kw) in enumerate(settings.items()):
        variants[name] = out / f"q{i}.onnx"
        quantize_dynamic(str(exports[-1]), str(variants[name]), **kw)
    batches = [tok([t], truncation=True, max_length=256, return_tensors="np") for t in texts]
    ref = None
    for name, path in variants.items():
        session = OnnxQueries(path, 1)
        vectors = np.concatenate([session.encode(b) for b in batches])
        ref = vectors if ref is None else ref
        cos = (vectors * ref).sum(1)
        times = []
        for _ in range(2):
            for b in batches:
                start = time.perf_counter()
                session.encode(b)
                times.append(time.perf_counter() - start)
        print(json.dumps({"variant": name, "queries": len(texts), "min_cosine": round(float(cos.min()), 5),
                          "p5_cosine": round(float(np.percentile(cos, 5)), 5),
                          "median_ms": round(1000 * float(np.median(times)), 2)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
