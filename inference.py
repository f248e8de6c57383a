"""Treatment recommendations from structured patient records: the inference stage.

    # one record (a file, or - for stdin), the Recommendation JSON on stdout
    python inference.py --patient examples/patients/hypertension_diabetes.json
    cat examples/patients/asthma_child.json | python inference.py --patient - --format text

    # many records, one JSON line each, generated in batches
    python -c "import json,glob; [print(json.dumps(json.load(open(f)))) for f in sorted(glob.glob('examples/patients/*.json'))]" > records.jsonl
    python inference.py --batch records.jsonl --batch-size 8 --output recommendations.jsonl

    # the base model without an adapter, on purpose
    python inference.py --base-only --patient examples/patients/strep_penicillin_allergy.json

    # the HTTP endpoint (POST /api/treatment-recommendations, GET /health, docs at /docs)
    python inference.py --serve --host 127.0.0.1 --port 8000
    python inference.py --serve --host 0.0.0.0 --api-key-file api.key   # off loopback a key is required
    curl -s -X POST http://127.0.0.1:8000/api/treatment-recommendations \\
        -H 'Content-Type: application/json' -d @examples/patients/chest_pain_low_spo2.json

    # llama.cpp on a GGUF from export_model.py: same prompts, grammar, safety rules, log and response
    python inference.py --backend llama-cpp \\
        --gguf models/tinyllama-medquad-treatment/gguf/tinyllama-medquad-treatment-Q4_K_M.gguf \\
        --patient examples/patients/hypertension_diabetes.json

    # offline smoke run on the tiny random model (no adapter needed with --base-only)
    python inference.py --base-model models/tiny-random --base-only --max-new-tokens 64 \\
        --log-file /tmp/inference_log.json --patient examples/patients/chest_pain_low_spo2.json

The model (adapter merged by default) loads once per process. Decoding is greedy and constrained by the
Sections JSON schema, so the output always validates; the safety rules (medlora/safety.py) run after
generation. One entry per record is appended to --log-file, without raw patient data unless --log-inputs.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from medlora.cli import UsageError, run_stage
from medlora.files import DEFAULT_LOG_MAX_BYTES, append_json_log, atomic_write
from medlora.generation import DEFAULT_MAX_NEW_TOKENS, SectionsGenerator
from medlora.grounding import check_grounding, grounding_fields, realign
from medlora.logs import IdHasher
from medlora.modeling import load_model
from medlora.retrieval import (
    DEFAULT_K,
    DEFAULT_MAX_CONTEXT_TOKENS,
    MAX_PASSAGES,
    Hit,
    load_index,
    retrieve_for_record,
)
from medlora.safety import apply_safety
from medlora.schemas import (
    MAX_RECORD_BYTES,
    SECTION_NAMES,
    ModelInfo,
    PatientRecord,
    Recommendation,
    Sections,
    error_details,
    error_line,
    load_record,
)

log = logging.getLogger("inference")


@dataclass
class InferenceConfig:
    patient: str | None = field(
        default=None, metadata={"help": "one PatientRecord as JSON: a file, or - for stdin"}
    )
    batch: str | None = field(
        default=None, metadata={"help": "many records, one JSON object per line (JSONL)"}
    )
    check: str | None = field(
        default=None,
        metadata={
            "help": "with --patient: apply the safety rules to this recommendation JSON, no model loaded"
        },
    )
    passages: str | None = field(
        default=None,
        metadata={
            "help": "with --check: the numbered passages the recommendation cites (JSON list of {text, url, ...}); "
            "adds the grounding check"
        },
    )
    serve: bool = field(
        default=False, metadata={"help": "serve the HTTP endpoint instead of reading records"}
    )
    output: str | None = field(default=None, metadata={"help": "write here (atomically) instead of stdout"})
    format: Literal["json", "text"] = field(default="json", metadata={"help": "json, or readable text"})
    base_model: str = field(default="models/tinyllama", metadata={"help": "base model directory"})
    adapter: str = field(
        default="models/tinyllama-medquad-treatment", metadata={"help": "LoRA adapter from train_model.py"}
    )
    base_only: bool = field(default=False, metadata={"help": "run the base model without any adapter"})
    merge: bool = field(default=True, metadata={"help": "merge the adapter into the weights (faster)"})
    backend: Literal["transformers", "llama-cpp"] = field(
        default="transformers", metadata={"help": "transformers, or llama-cpp with an exported --gguf file"}
    )
    gguf: str | None = field(
        default=None, metadata={"help": "--backend llama-cpp: GGUF from export_model.py"}
    )
    threads: int = field(
        default=0, metadata={"help": "--backend llama-cpp: CPU threads (0: llama.cpp's choice)"}
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})
    precision: Literal["auto", "fp32", "fp16", "bf16"] = field(
        default="auto", metadata={"help": "auto: fp16/bf16 on GPU, fp32 on CPU"}
    )
    max_new_tokens: int = field(
        default=DEFAULT_MAX_NEW_TOKENS,
        metadata={"help": "generation budget; when it runs out the complete items are kept"},
    )
    batch_size: int = field(default=8, metadata={"help": "records per generate() call with --batch"})
    log_file: str = field(
        default="models/inference_log.json", metadata={"help": "JSON log, one entry per record"}
    )
    log_inputs: bool = field(
        default=False, metadata={"help": "also log the raw patient record (off by default)"}
    )
    host: str = field(default="127.0.0.1", metadata={"help": "--serve: address to bind"})
    port: int = field(default=8000, metadata={"help": "--serve: port"})
    max_body_bytes: int = field(default=MAX_RECORD_BYTES, metadata={"help": "--serve: request body limit"})
    k: int = field(
        default=DEFAULT_K, metadata={"help": "MedQuAD passages retrieved into the prompt (0: no retrieval)"}
    )
    max_context_tokens: int = field(
        default=DEFAULT_MAX_CONTEXT_TOKENS, metadata={"help": "token budget of the retrieved passages"}
    )
    index: str = field(
        default="data/medquad/index", metadata={"help": "passage index built by download_model.py"}
    )
    max_queue: int = field(default=16, metadata={"help": "--serve: requests admitted at once; then 503"})
    request_timeout: float = field(default=300.0, metadata={"help": "--serve: seconds per request; then 503"})
    api_key_file: str | None = field(
        default=None, metadata={"help": "--serve: file holding the API key (or $MEDLORA_API_KEY)"}
    )
    no_auth: bool = field(default=False, metadata={"help": "--serve: no API key even off loopback"})
    log_max_bytes: int = field(
        default=DEFAULT_LOG_MAX_BYTES, metadata={"help": "rotate --log-file beyond this size (0: never)"}
    )

    def validate(self) -> None:
        if sum([self.patient is not None, self.batch is not None, self.serve]) != 1:
            raise UsageError("give exactly one of --patient FILE (or -), --batch FILE.jsonl, --serve")
        if (self.backend == "llama-cpp") != (self.gguf is not None):
            raise UsageError("--backend llama-cpp needs --gguf FILE; --gguf needs --backend llama-cpp")
        if self.gguf is not None:
            from medlora.llama_backend import check_gguf

            check_gguf(self.gguf)  # exit 2 naming the file before any record is read
        for flag, path in (("--patient", self.patient), ("--batch", self.batch)):
            if path not in (None, "-") and not Path(path).is_file():
                raise UsageError(f"{flag}: file not found: {path}")
        if self.passages is not None and self.check is None:
            raise UsageError("--passages applies to --check only (inference retrieves from --index)")
        if self.check is not None and (self.patient is None or not Path(self.check).is_file()):
            raise UsageError(f"--check needs --patient and an existing file, got {self.check}")
        if self.serve and self.output:
            raise UsageError("--output does not apply to --serve")
        if not 1 <= self.max_new_tokens <= 8192:
            raise UsageError(f"--max-new-tokens must be between 1 and 8192, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not 1 <= self.port <= 65535:
            raise UsageError(f"--port must be between 1 and 65535, got {self.port}")
        if self.max_body_bytes < 1024:
            raise UsageError(f"--max-body-bytes must be at least 1024, got {self.max_body_bytes}")
        if not 0 <= self.k <= MAX_PASSAGES or self.max_context_tokens < 1:
            raise UsageError(f"--k must be between 0 and {MAX_PASSAGES}, --max-context-tokens at least 1")
        if self.max_queue < 1 or self.request_timeout <= 0 or self.log_max_bytes < 0:
            raise UsageError("--max-queue must be >= 1, --request-timeout > 0, --log-max-bytes >= 0")
        if self.serve:
            from medlora.server import resolve_api_key

            resolve_api_key(self.host, self.api_key_file, self.no_auth)  # exit 2 before the model loads


def log_entry(cfg: InferenceConfig, outcome: str, **fields: Any) -> dict[str, Any]:
    return {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "request_id": fields.pop("request_id", None) or uuid.uuid4().hex,
        # With llama-cpp the GGUF is the model; "model" in an entry names its base and adapter.
        "base_model": None if cfg.gguf else cfg.base_model,
        "adapter": None if cfg.base_only or cfg.gguf else cfg.adapter,
        "backend": cfg.backend,
        "gguf": cfg.gguf,
        "outcome": outcome,
        **fields,
    }


def write_log(path: str | Path, *entries: dict[str, Any], max_bytes: int = DEFAULT_LOG_MAX_BYTES) -> None:
    # Constant cost per call whatever the log's length; rotated by size (medlora/files.py).
    append_json_log(path, *entries, max_bytes=max_bytes)


class Recommender:
    """The model, its grammar and the log: loaded once, then ``recommend`` per record or batch."""

    def __init__(self, cfg: InferenceConfig):
        self.cfg = cfg
        # --k 0 turns retrieval off (evidence "unchecked"); otherwise a missing or stale index is exit 2,
        # before minutes of model loading.
        self.index = load_index(Path(cfg.index).parent, cfg.index) if cfg.k > 0 else None
        if cfg.backend == "llama-cpp":
            from medlora.llama_backend import LlamaSectionsGenerator

            self.generator = LlamaSectionsGenerator(cfg.gguf, cfg.max_new_tokens, cfg.threads)
            self.info, self.context = ModelInfo(**self.generator.info), self.generator.context
        else:
            adapter = None if cfg.base_only else cfg.adapter
            model, tokenizer, info = load_model(cfg.base_model, adapter, cfg.device, cfg.precision, cfg.merge)
            self.info, self.context = ModelInfo(**info), model.config.max_position_embeddings
            self.generator = SectionsGenerator(model, tokenizer, max_new_tokens=cfg.max_new_tokens)
        self.hash_id = IdHasher(cfg.log_file)  # keyed: the log cannot be joined to guessed ids

    def retrieve(self, record: PatientRecord) -> list[Hit]:
        """The record's passages, as many as fit the model's context with the generation budget (fewer
        passages first); a record that does not fit even alone is bad input."""
        hits = []
        if self.index is not None:
            hits = retrieve_for_record(record, self.index, self.cfg.k, self.cfg.max_context_tokens)
        room = self.context - self.cfg.max_new_tokens
        while len(self.generator.prompt_ids(record, [h.passage for h in hits])) > room:
            if not hits:
                raise UsageError(
                    f"record: its prompt does not fit the model's context of {self.context} tokens with "
                    f"--max-new-tokens {self.cfg.max_new_tokens}; shorten the record or lower --max-new-tokens"
                )
            hits = hits[:-1]
        return hits

    def _grounded(self, record: PatientRecord, gen: Any, hits: list[Hit]) -> tuple[Recommendation, Any]:
        """Grounding check, then the safety rules, then the published form (citations follow their items)."""
        if self.index is None:
            sections, cites, evidence = gen.sections, gen.citations, "unchecked"
        elif not hits:  # nothing relevant retrieved: abstain, keep only what the safety rules add
            sections, cites, evidence = Sections(), {}, "none"
        else:
            sections, cites, evidence = gen.sections, gen.citations, "retrieved"
        report = None
        if evidence == "retrieved":
            g = check_grounding(record, sections, cites, [h.passage for h in hits])
            sections, cites, report = g.sections, g.citations, g.grounding
        checked = apply_safety(record, sections)
        cites = realign(sections, cites, checked.sections) if cites else {}
        probs = getattr(gen, "token_probs", None) if gen is not None else None
        fields = grounding_fields(cites, hits, evidence, report, probs)
        truncated = gen is not None and gen.finish == "budget"  # said in the response, not only the log
        rec = Recommendation(
            **checked.sections.model_dump(),
            safety=checked.safety,
            model=self.info,
            truncated=truncated,
            **fields,
        )
        return rec, checked

    def log_outcome(self, outcome: str, source: str, request_id: str | None = None, **fields: Any) -> None:
        """One entry for a request that never reached the model (invalid_input, overloaded, timeout)."""
        entry = log_entry(self.cfg, outcome, request_id=request_id, source=source, **fields)
        write_log(self.cfg.log_file, entry, max_bytes=self.cfg.log_max_bytes)

    def log_invalid(self, fields: list[str], source: str, request_id: str | None = None) -> None:
        self.log_outcome("invalid_input", source, request_id, invalid_fields=fields)

    def recommend(
        self,
        records: list[PatientRecord],
        source: str = "cli",
        request_ids: list[str] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[Recommendation]:
        """``cancelled()``, asked once a batch is generated: True logs it as timeout and raises TimeoutError."""
        ids = request_ids or [uuid.uuid4().hex for _ in records]
        out = []
        for start in range(0, len(records), self.cfg.batch_size):
            chunk = slice(start, start + self.cfg.batch_size)
            out.extend(self._batch(records[chunk], ids[chunk], source, cancelled))
        return out

    def _batch(self, records: list[PatientRecord], ids: list[str], source: str, cancelled=None) -> list:
        start = time.perf_counter()
        out, entries = [], []
        try:
            hits = [self.retrieve(r) for r in records]
        except UsageError:  # a prompt that cannot fit is bad input, refused before any generation
            entries = [self._entry(r, i, source, "invalid_input", invalid_fields=["record"])
                       for r, i in zip(records, ids, strict=True)]  # fmt: skip
            write_log(self.cfg.log_file, *entries, max_bytes=self.cfg.log_max_bytes)
            raise
        try:
            # Records without evidence are not generated at all: an abstention cannot invent anything.
            todo = [i for i, h in enumerate(hits) if h or self.index is None]
            passages = {"passages": [[h.passage for h in hits[i]] for i in todo]} if self.index else {}
            generated = dict(zip(todo, self.generator.generate(
                [records[i] for i in todo], batch_size=max(1, len(todo)), **passages), strict=True))  # fmt: skip
            latency = round(time.perf_counter() - start, 4)
            outcome = "timeout" if cancelled is not None and cancelled() else "ok"
            for i, (record, rid) in enumerate(zip(records, ids, strict=True)):
                gen = generated.get(i)
                rec, checked = self._grounded(record, gen, hits[i])
                out.append(rec)
                entries.append(self._entry(
                    record, rid, source, outcome,
                    latency_s=latency, batch_size=len(records), prompt_tokens=gen.prompt_tokens if gen else 0,
                    generated_tokens=gen.generated_tokens if gen else 0,
                    finish=gen.finish if gen else "abstained", red_flags=checked.flag_codes,
                    allergy_conflicts=len(checked.safety.allergy_conflicts), evidence=rec.evidence,
                    passages=len(rec.passages), unsupported=len(rec.grounding.unsupported),
                ))  # fmt: skip
        except Exception as e:
            err = type(e).__name__
            entries = [
                self._entry(r, i, source, "error", error=err) for r, i in zip(records, ids, strict=True)
            ]
            write_log(self.cfg.log_file, *entries, max_bytes=self.cfg.log_max_bytes)
            raise
        write_log(self.cfg.log_file, *entries, max_bytes=self.cfg.log_max_bytes)
        if outcome == "timeout":
            raise TimeoutError("the caller gave up before the recommendation was ready")
        return out

    def _entry(self, record: PatientRecord, rid: str, source: str, outcome: str, **fields: Any) -> dict:
        entry = log_entry(self.cfg, outcome, request_id=rid, source=source, **fields)
        entry["model"] = self.info.model_dump()
        entry["patient_id_hmac"] = self.hash_id(record.patient_id)
        if self.cfg.log_inputs:
            entry["input"] = record.model_dump(mode="json")
        return entry


def _read_limited(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read(MAX_RECORD_BYTES + 1)
    with open(path, "rb") as fh:
        return fh.read(MAX_RECORD_BYTES + 1)


def read_records(cfg: InferenceConfig) -> list[PatientRecord]:
    """Every record validated before the model is touched; any invalid one is logged and ends the run."""
    if cfg.patient is not None:
        raws = [("", _read_limited(cfg.patient))]
    else:
        with open(cfg.batch, "rb") as fh:
            raws = [(f"line {i}: ", line) for i, line in enumerate(fh, 1) if line.strip()]
        if not raws:
            raise UsageError(f"--batch {cfg.batch} holds no records")
    records, problems = [], []
    for where, raw in raws:
        try:
            records.append(load_record(raw))
        except ValidationError as e:
            problems.append((where + error_line(e), [d["field"] for d in error_details(e)]))
        except ValueError as e:
            problems.append((where + str(e), ["record"]))
    if problems:
        entries = [log_entry(cfg, "invalid_input", source="cli", invalid_fields=f) for _, f in problems]
        write_log(cfg.log_file, *entries, max_bytes=cfg.log_max_bytes)
        more = f" (and {len(problems) - 1} more invalid records)" if len(problems) > 1 else ""
        raise UsageError(f"invalid patient record: {problems[0][0]}{more}")
    return records


def format_text(rec: Recommendation) -> str:
    """The recommendation as sections a person reads at a terminal."""
    lines = ["TREATMENT RECOMMENDATION"]
    if rec.safety.red_flags:
        lines.append("!! RED FLAGS: " + "; ".join(f.message for f in rec.safety.red_flags))
    if rec.truncated:
        lines.append("!! INCOMPLETE: generation stopped at --max-new-tokens; items cut mid-way were dropped")
    for name in SECTION_NAMES:
        lines.append(f"\n{name.replace('_', ' ').capitalize()}:")
        items = getattr(rec, name)
        for item in items:
            if isinstance(item, str):
                lines.append(f"  - {item}")
            else:
                data = item.model_dump(exclude_none=True)
                lines.append("  - " + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in data.items() if v))
        if not items:
            lines.append("  (none)")
    for c in rec.safety.allergy_conflicts:
        lines.append(f"\nRemoved for allergy ({c.allergy}): {c.medication}, {c.reason}")
    for c in rec.safety.cautions:
        lines.append(f"\nCaution ({c.allergy}): {c.medication}, {c.reason}")
    for d in rec.safety.duplicate_medications:
        lines.append(f"\nPossible duplicate therapy: {d.medication}, {d.reason}")
    for u in rec.grounding.unsupported:
        lines.append(f"\nRemoved as unsupported ({u.section}): {u.item}, {u.reason}")
    if rec.evidence == "none":
        lines.append(
            "\nNo MedQuAD passage about this record was found: only the safety rules' actions are shown."
        )
    for url in rec.sources:
        lines.append(f"Source: {url}")
    model = rec.model
    if model is not None:
        lines.append(
            f"\nModel: {model.base} @ {model.revision or 'unknown'}, adapter: {model.adapter or 'none'}"
        )
    lines.append(f"\n{rec.safety.disclaimer}")
    return "\n".join(lines)


def render(recs: list[Recommendation], cfg: InferenceConfig) -> str:
    if cfg.format == "text":
        return "\n\n".join(format_text(r) for r in recs) + "\n"
    if cfg.patient is not None:
        return recs[0].model_dump_json(indent=2) + "\n"
    return "".join(r.model_dump_json() + "\n" for r in recs)


def main(cfg: InferenceConfig) -> list[Recommendation] | None:
    if cfg.serve:
        from medlora.server import resolve_api_key, serve

        limits = {"max_queue": cfg.max_queue, "request_timeout": cfg.request_timeout}
        key = resolve_api_key(cfg.host, cfg.api_key_file, cfg.no_auth)  # never stored in cfg: cfg is logged
        serve(Recommender(cfg), cfg.host, cfg.port, cfg.max_body_bytes, **limits, api_key=key)
        return None
    records = read_records(cfg)
    if cfg.check is not None:
        from medlora.audit import check

        hits = None
        if cfg.passages is not None:
            from medlora.grounding import load_passages_file

            try:
                hits = load_passages_file(cfg.passages)
            except (OSError, ValueError) as e:
                raise UsageError(f"--passages {cfg.passages}: {e}") from None
        recs = [check(records[0], cfg.check, hits)]
    else:
        recs = Recommender(cfg).recommend(records)
    text = render(recs, cfg)
    if cfg.output:
        atomic_write(cfg.output, text)
        log.info("wrote %d recommendation(s) to %s", len(recs), cfg.output)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return recs


if __name__ == "__main__":
    sys.exit(run_stage(main, InferenceConfig, description=__doc__))
