"""The query encoder on ONNX Runtime (``medlora.retrieval.query_runtime``) against torch, on a tiny random BERT
written as the encoder folder is: the same vectors, the export cached by the weights' hash, and torch kept (said
once) when onnxruntime is absent, when the check fails or when asked for."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from medlora.retrieval import dense, query_runtime
from medlora.retrieval.hybrid_rules import query_of, read_consumer_set

WORDS = re.findall(
    r"\w+", "my dad hand shakes when resting chest pain arm tummy hurts after eat what can i take a week"
)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("tiny-minilm")
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *WORDS,
        *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"),
    ]
    vocab += list("abcdefghijklmnopqrstuvwxyz")
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(dict.fromkeys(vocab))}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    fast.save_pretrained(d)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=256,
    )  # fmt: skip
    BertModel(cfg).eval().save_pretrained(d)
    source = {"name": "tiny-minilm", "weights_sha256": dense.sha256(d / dense.WEIGHTS)}
    (d / dense.SOURCE_FILE).write_text(json.dumps(source), encoding="utf-8")
    return d


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(query_runtime.ENV_CACHE, str(tmp_path / "onnx"))
    monkeypatch.delenv(query_runtime.ENV_RUNTIME, raising=False)
    query_runtime._said.clear()
    return tmp_path / "onnx"


@pytest.fixture()
def onnx_cache(cache):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    return cache


def consumer_texts() -> list[str]:
    return [query_of(r) for r in read_consumer_set()]


def test_onnx_queries_give_torch_vectors(tiny_encoder, onnx_cache):
    enc = dense.MiniLM(tiny_encoder, threads=1)
    assert enc.runtime == "onnxruntime"
    texts = consumer_texts()[:40] + ["UTI", "chest pain; shortness of breath; sweating"]
    torch_vectors = enc._batch(texts)
    one_by_one = np.concatenate([enc.encode([t]) for t in texts])
    assert query_runtime.min_cosine(torch_vectors, one_by_one) >= query_runtime.MIN_COSINE
    enc._cache.clear()
    assert query_runtime.min_cosine(torch_vectors, enc.encode(texts)) >= query_runtime.MIN_COSINE
    # the export is cached under the weights' hash and reused by the next load
    (exported,) = onnx_cache.glob("*.onnx")
    assert enc.digest[:16] in exported.name
    stamp = exported.stat().st_mtime_ns
    assert dense.MiniLM(tiny_encoder, threads=1).runtime == "onnxruntime"
    assert exported.stat().st_mtime_ns == stamp


def test_a_broken_cached_export_is_made_again(tiny_encoder, onnx_cache):
    enc = dense.MiniLM(tiny_encoder, threads=1)
    (exported,) = onnx_cache.glob("*.onnx")
    exported.write_bytes(b"not an onnx file")
    again = dense.MiniLM(tiny_encoder, threads=1)
    assert again.runtime == "onnxruntime"
    assert np.allclose(again.encode(["my tummy hurts"]), enc._batch(["my tummy hurts"]), atol=1e-5)


def test_torch_is_kept_when_the_vectors_differ(tiny_encoder, onnx_cache, monkeypatch, caplog):
    monkeypatch.setattr(
        query_runtime, "pool", lambda hidden, mask: hidden[:, 0] / np.linalg.norm(hidden[:, 0])
    )
    with caplog.at_level(logging.WARNING, logger=query_runtime.__name__):
        enc = dense.MiniLM(tiny_encoder, threads=1)
        dense.MiniLM(tiny_encoder, threads=1)
    assert enc.runtime == "torch" and enc.queries is None
    assert sum("differ from torch" in r.getMessage() for r in caplog.records) == 1


def test_torch_is_kept_without_onnxruntime_said_once(tiny_encoder, cache, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    with caplog.at_level(logging.WARNING, logger=query_runtime.__name__):
        encs = [dense.MiniLM(tiny_encoder, threads=1) for _ in range(2)]
    assert [e.runtime for e in encs] == ["torch", "torch"]
    assert sum("onnxruntime is not installed" in r.getMessage() for r in caplog.records) == 1
    assert not list(cache.glob("*.onnx"))
    v = encs[0].encode(["chest pain"])
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_torch_on_request(tiny_encoder, cache, monkeypatch):
    monkeypatch.setenv(query_runtime.ENV_RUNTIME, "torch")
    assert dense.MiniLM(tiny_encoder, threads=1).runtime == "torch"


REAL_ENCODER = Path(__file__).resolve().parents[2] / dense.DEFAULT_DIR


@pytest.mark.integration
@pytest.mark.skipif(not (REAL_ENCODER / dense.SOURCE_FILE).is_file(), reason=f"no encoder at {REAL_ENCODER}")
def test_real_encoder_on_onnx_matches_torch_on_every_consumer_question(onnx_cache):
    enc = dense.MiniLM(REAL_ENCODER, threads=1)
    assert enc.runtime == "onnxruntime"
    texts = consumer_texts()
    fast = np.concatenate([enc.encode([t]) for t in texts])
    ref = np.concatenate([enc._batch([t]) for t in texts])
    assert len(texts) >= 100
    assert query_runtime.min_cosine(ref, fast) >= query_runtime.MIN_COSINE
