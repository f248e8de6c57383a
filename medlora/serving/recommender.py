"""The model, its retrieval index and its log, loaded once: ``Recommender.recommend`` turns patient records into
published Recommendations (retrieve -> generate -> checks after generation -> safety rules), one log entry each.

Used by ``inference.py`` (CLI and ``--serve``), the HTTP server and the benchmarks. ``cfg`` is
``inference.InferenceConfig`` (any object with its fields).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..common.cli import UsageError
from ..common.files import DEFAULT_LOG_MAX_BYTES, append_json_log
from ..common.progress import step
from ..common.schemas import SECTION_NAMES, ModelInfo, PatientRecord, Recommendation, Sections
from ..generation.hf import SectionsGenerator
from ..grounding.check import check_output, grounding_fields, realign
from ..grounding.publishable import repetition_loop
from ..model.loading import load_model, require_model_files
from ..retrieval.hits import Hit
from ..retrieval.index import load_index, retrieve_for_record
from ..retrieval.subject import concerns
from ..safety.rules import SafetyFacts, apply_safety
from .logs import IdHasher
from .present import tidy, without_removed


def gguf_source(gguf: str | Path) -> tuple[str | None, str | None]:
    """The base model and adapter a GGUF was exported from, as ``export_model.py`` recorded them in the
    ``model_info.json`` beside it; ``(None, None)`` for a file from elsewhere."""
    info = Path(gguf).parent / "model_info.json"
    try:
        files = json.loads(info.read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError):
        return None, None
    entry = next((f for f in files if isinstance(f, dict) and f.get("file") == Path(gguf).name), {})
    return entry.get("base_model"), entry.get("source_adapter")


def log_entry(cfg: Any, outcome: str, **fields: Any) -> dict[str, Any]:
    # With llama-cpp the GGUF is the model; its export record names the base and adapter it came from.
    base, adapter = (
        gguf_source(cfg.gguf) if cfg.gguf else (cfg.base_model, None if cfg.base_only else cfg.adapter)
    )
    return {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "request_id": fields.pop("request_id", None) or uuid.uuid4().hex,
        "base_model": base,
        "adapter": adapter,
        "backend": cfg.backend,
        "gguf": cfg.gguf,
        "outcome": outcome,
        **fields,
    }


def write_log(path: str | Path, *entries: dict[str, Any], max_bytes: int = DEFAULT_LOG_MAX_BYTES) -> None:
    # Constant cost per call whatever the log's length; rotated by size (medlora/common/files.py).
    append_json_log(path, *entries, max_bytes=max_bytes)


class Recommender:
    """The model, its grammar and the log: loaded once, then ``recommend`` per record or batch."""

    def __init__(self, cfg: Any):
        self.cfg = cfg
        if cfg.backend != "llama-cpp":  # a missing model or adapter is named before the index and model load
            require_model_files(cfg.base_model, None if cfg.base_only else cfg.adapter)
        # --k 0 turns retrieval off (evidence "unchecked"); otherwise a missing or stale index is exit 2,
        # before minutes of model loading.
        self.index = None
        if cfg.k > 0:
            with step("loading the passage index"):
                self.index = load_index(Path(cfg.index).parent, cfg.index)
        if cfg.backend == "llama-cpp":
            from ..generation.llama_backend import LlamaSectionsGenerator

            self.generator = LlamaSectionsGenerator(cfg.gguf, cfg.max_new_tokens, cfg.threads)
            self.info, self.context = ModelInfo(**self.generator.info), self.generator.context
        else:
            adapter = None if cfg.base_only else cfg.adapter
            with step(f"loading {cfg.base_model}" + (f" with {adapter}" if adapter else "")):
                model, tokenizer, info = load_model(
                    cfg.base_model, adapter, cfg.device, cfg.precision, cfg.merge
                )
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
        """The checks after generation, then the safety rules, then the published form (citations follow their
        items)."""
        concerned = None
        if self.index is None:
            sections, cites, evidence, passages = gen.sections, gen.citations, "unchecked", None
        elif not hits:  # nothing relevant retrieved: abstain, keep only what the safety rules add
            sections, cites, evidence, passages = Sections(), {}, "none", []
        else:
            sections, cites, evidence = gen.sections, gen.citations, "retrieved"
            passages = [h.passage for h in hits]
            concerned = concerns(self.index, record, passages)  # comorbidities' passages vouch for nothing
        facts = SafetyFacts.of(record)  # the record's drugs, read once for the check and the safety rules
        g = check_output(record, sections, cites, passages, facts.drugs, concerned)
        checked = apply_safety(record, g.sections, facts)
        cites = realign(g.sections, g.citations, checked.sections) if cites else {}
        probs = getattr(gen, "token_probs", None) if gen is not None else None
        # Confidence speaks only for published items: a section any rule changed has no decoder mean.
        # An empty section has none either: "[]" is an easy choice for the decoder (0.93-0.99 in issue 30), and a
        # high figure beside a blank section reads as confidence in nothing.
        edited = g.edited | {
            n for n in SECTION_NAMES
            if getattr(checked.sections, n) != getattr(g.sections, n) or not getattr(checked.sections, n)
        }  # fmt: skip
        report = without_removed(g.grounding, g.sections, checked.sections)
        fields = grounding_fields(cites, hits, evidence, report, probs, edited)
        truncated = gen is not None and gen.finish == "budget"  # said in the response, not only the log
        reason = None
        if truncated:
            loop = repetition_loop(gen.text)
            reason = "a repetition loop ran to --max-new-tokens" if loop else "--max-new-tokens was reached"
        rec = Recommendation(
            **tidy(checked.sections).model_dump(),
            safety=checked.safety,
            model=self.info,
            truncated=truncated,
            truncated_reason=reason,
            **fields,
        )
        return rec, checked

    def log_outcome(self, outcome: str, source: str, request_id: str | None = None, **fields: Any) -> None:
        """One entry for a request that never reached the model (invalid_input, overloaded, timeout)."""
        entry = log_entry(self.cfg, outcome, request_id=request_id, source=source, **fields)
        write_log(self.cfg.log_file, entry, max_bytes=self.cfg.log_max_bytes)

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
