"""The query encoder on ONNX Runtime: the same all-MiniLM-L6-v2 forward pass, faster for one short query.

A free-text question costs one encoder pass. On one thread of the project's 2-core machine the torch forward pass
of a 13-piece query took 13.3 ms and the same graph exported to ONNX (``torch.onnx.export``, fp32, opset 17) and
run by ONNX Runtime 5.9 ms, with vectors equal to torch's to a cosine of 0.9999999 on all 194 consumer-style
questions (``bench/hybrid_speed.py`` times both in one run). Only queries go through it: the passage vectors
stored with the index stay torch's.

The export is made once per weights file, on first use, into ``~/.cache/medlora/onnx/`` (or
``$MEDLORA_ONNX_DIR``), named by the weights' SHA-256, so it cannot go stale. At load the session is checked
against torch on ``PROBES`` (one text at a time and one padded batch): a cosine under ``MIN_COSINE`` keeps torch.
Torch stays the query encoder, said once in the log, when ``onnxruntime`` is not installed, when the export
cannot be made (it needs the ``onnx`` package), when the check fails, or when ``MEDLORA_QUERY_RUNTIME=torch``.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..common.files import atomic_path

log = logging.getLogger(__name__)

ENV_RUNTIME = "MEDLORA_QUERY_RUNTIME"
ENV_CACHE = "MEDLORA_ONNX_DIR"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17
# The query vectors must be the ones the thresholds were chosen with: a cosine with torch's at least this.
MIN_COSINE = 0.9999
PROBES = (
    "havent pooped in a week what can i take",
    "chest pain radiating to the left arm; shortness of breath; sweating",
    "What are the treatments for Wilson disease?",
    "my dad's hand shakes when it is resting on his lap and he walks slower than he used to, is it serious",
    "UTI",
)
_said: set[str] = set()


def _once(key: str, msg: str, *args: Any) -> None:
    if key not in _said:
        _said.add(key)
        log.warning(msg, *args)


def cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "medlora" / "onnx")


def pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over real tokens, L2-normalised: what ``dense.MiniLM`` computes in torch."""
    m = mask[..., None].astype(np.float32)
    pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def export(model: Any, tokenizer: Any, path: Path) -> None:
    """The model's forward pass (last hidden state) as ONNX, batch and length dynamic; written whole or not."""
    import torch

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    sample = tokenizer(["a short sample query", "another"], padding=True, return_tensors="pt")
    ids = sample["input_ids"]
    args = tuple(sample[k] if k in sample else torch.zeros_like(ids) for k in INPUTS)
    axes = {k: {0: "batch", 1: "pieces"} for k in (*INPUTS, "hidden")}
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHidden(model).eval(),
            args,
            str(tmp),
            input_names=list(INPUTS),
            output_names=["hidden"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


class OnnxQueries:
    """An ONNX Runtime session of the encoder: unit vectors from tokenized text."""

    def __init__(self, path: Path, threads: int = 1):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, int(threads))
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.path, self.version = path, ort.__version__
        self.inputs = [i.name for i in self.session.get_inputs()]

    def encode(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        ids = np.asarray(batch["input_ids"], dtype=np.int64)
        mask = np.asarray(batch.get("attention_mask", np.ones_like(ids)), dtype=np.int64)
        given = {"input_ids": ids, "attention_mask": mask}
        feed = {
            k: given.get(k, np.asarray(batch.get(k, np.zeros_like(ids)), dtype=np.int64)) for k in self.inputs
        }
        return pool(self.session.run(None, feed)[0], mask)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(1).min()) if len(a) else 1.0


def check(
    runtime: OnnxQueries, tokenizer: Any, reference: Any, max_pieces: int, texts: Sequence[str] = PROBES
):
    """The smallest cosine between the runtime's vectors and ``reference``'s (torch), one text at a time and as
    one padded batch."""
    texts = list(texts)

    def tok(batch: list[str]) -> dict[str, np.ndarray]:
        return tokenizer(batch, padding=True, truncation=True, max_length=max_pieces, return_tensors="np")

    ref = reference(texts)
    single = np.concatenate([runtime.encode(tok([t])) for t in texts])
    return min(min_cosine(ref, single), min_cosine(ref, runtime.encode(tok(texts))))


def load(
    model: Any, tokenizer: Any, name: str, digest: str, reference: Any, max_pieces: int, threads: int = 1
):
    """The ONNX Runtime query encoder for these weights, checked against torch (``reference``: texts -> unit
    vectors), or None (torch), said once."""
    if os.environ.get(ENV_RUNTIME, "").strip().lower() == "torch":
        _once("env", "query encoder on torch (%s=torch)", ENV_RUNTIME)
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        _once(
            "missing",
            "onnxruntime is not installed: the query encoder runs on torch, about twice as slow for one query "
            "(`pip install onnxruntime onnx`, see requirements.txt)",
        )
        return None
    path = cache_dir() / f"{name}-{digest[:16]}.onnx"
    runtime = None
    for attempt in range(2):
        try:
            if attempt or not path.is_file():
                export(model, tokenizer, path)
            runtime = OnnxQueries(path, threads)
            break
        except ImportError as e:
            _once(
                "export", "cannot export the query encoder to ONNX (%s): the query encoder runs on torch", e
            )
            return None
        except Exception as e:  # a stale or broken cached file is exported again, once
            if attempt:
                _once(
                    "broken",
                    "ONNX query encoder at %s unusable (%s): the query encoder runs on torch",
                    path,
                    e,
                )
                return None
    assert runtime is not None
    cos = check(runtime, tokenizer, reference, max_pieces)
    if cos < MIN_COSINE:
        _once(
            "check",
            "ONNX Runtime query vectors differ from torch's (cosine %.6f < %s): the query encoder runs on torch",
            cos,
            MIN_COSINE,
        )
        return None
    log.info("query encoder on ONNX Runtime %s (%s; cosine with torch >= %.7f)", runtime.version, path, cos)
    return runtime
