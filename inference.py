"""Treatment recommendations from structured patient records: the inference stage.

    # one record (a file, or - for stdin), the Recommendation JSON on stdout
    python inference.py --patient examples/patients/hypertension_diabetes.json
    cat examples/patients/asthma_child.json | python inference.py --patient - --format text

    # many records, one JSON line each, generated in batches
    python -c "import json,glob; [print(json.dumps(json.load(open(f)))) for f in sorted(glob.glob('examples/patients/*.json'))]" > records.jsonl
    python inference.py --batch records.jsonl --batch-size 8 --output recommendations.jsonl

    # audit any recommendation with the rules, no model loaded (add --passages FILE for grounding)
    python inference.py --patient examples/patients/strep_penicillin_allergy.json --check recommendation.json

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

The model (adapter merged by default) and the passage index load once per process (medlora/serving/recommender.py).
Per record: MedQuAD passages are retrieved, decoding is greedy and constrained by the schema (items cite passage
numbers), then the checks after generation (medlora/grounding/check.py) and the safety rules (medlora/safety/rules.py)
run in code. One entry per record is appended to --log-file, without raw patient data unless --log-inputs.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from medlora.common.cli import UsageError, run_stage
from medlora.common.files import DEFAULT_LOG_MAX_BYTES, atomic_write
from medlora.common.schemas import (
    MAX_PASSAGES,
    MAX_RECORD_BYTES,
    PatientRecord,
    Recommendation,
    error_details,
    error_line,
    load_record,
)
from medlora.generation.base import DEFAULT_MAX_NEW_TOKENS
from medlora.retrieval.hits import DEFAULT_K, DEFAULT_MAX_CONTEXT_TOKENS

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
            "help": "with --patient: apply the checks after generation and the safety rules to this "
            "recommendation JSON (sections with plain-string or cited items, a bare medications list, or a whole "
            "Recommendation), no model loaded"
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

    def unused(self) -> set[str]:
        """Settings this run does not read: left out of the settings line (medlora/common/cli.py)."""
        out = set()
        if self.base_only:
            out |= {"adapter", "merge"}
        if self.backend == "llama-cpp":
            out |= {"base_model", "adapter", "merge", "device", "precision"}
        else:
            out |= {"gguf", "threads"}
        if not self.serve:
            out |= {
                "host",
                "port",
                "max_body_bytes",
                "max_queue",
                "request_timeout",
                "api_key_file",
                "no_auth",
            }
        if self.k == 0:
            out |= {"index", "max_context_tokens"}
        return out

    def validate(self) -> None:
        if sum([self.patient is not None, self.batch is not None, self.serve]) != 1:
            raise UsageError("give exactly one of --patient FILE (or -), --batch FILE.jsonl, --serve")
        if (self.backend == "llama-cpp") != (self.gguf is not None):
            raise UsageError("--backend llama-cpp needs --gguf FILE; --gguf needs --backend llama-cpp")
        if self.gguf is not None:
            from medlora.generation.llama_backend import check_gguf

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
            from medlora.serving.server import resolve_api_key

            resolve_api_key(self.host, self.api_key_file, self.no_auth)  # exit 2 before the model loads


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
        from medlora.serving.recommender import log_entry, write_log

        entries = [log_entry(cfg, "invalid_input", source="cli", invalid_fields=f) for _, f in problems]
        write_log(cfg.log_file, *entries, max_bytes=cfg.log_max_bytes)
        more = f" (and {len(problems) - 1} more invalid records)" if len(problems) > 1 else ""
        raise UsageError(f"invalid patient record: {problems[0][0]}{more}")
    return records


def render(recs: list[Recommendation], cfg: InferenceConfig) -> str:
    if cfg.format == "text":
        from medlora.serving.present import format_text

        return "\n\n".join(format_text(r) for r in recs) + "\n"
    if cfg.patient is not None:
        return recs[0].model_dump_json(indent=2) + "\n"
    return "".join(r.model_dump_json() + "\n" for r in recs)


def main(cfg: InferenceConfig) -> list[Recommendation] | None:
    if cfg.serve:
        from medlora.serving.recommender import Recommender
        from medlora.serving.server import resolve_api_key, serve

        limits = {"max_queue": cfg.max_queue, "request_timeout": cfg.request_timeout}
        key = resolve_api_key(cfg.host, cfg.api_key_file, cfg.no_auth)  # never stored in cfg: cfg is logged
        serve(Recommender(cfg), cfg.host, cfg.port, cfg.max_body_bytes, **limits, api_key=key)
        SERVED.append(True)
        return None
    records = read_records(cfg)
    if cfg.check is not None:
        from medlora.serving.audit import check

        hits = None
        if cfg.passages is not None:
            from medlora.grounding.check import load_passages_file

            try:
                hits = load_passages_file(cfg.passages)
            except (OSError, ValueError) as e:
                raise UsageError(f"--passages {cfg.passages}: {e}") from None
        recs = [check(records[0], cfg.check, hits)]
    else:
        from medlora.serving.recommender import Recommender  # the model loads only when one is needed

        recs = Recommender(cfg).recommend(records)
    text = render(recs, cfg)
    if cfg.output:
        atomic_write(cfg.output, text)
        log.info("wrote %d recommendation(s) to %s", len(recs), cfg.output)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return recs


SERVED: list[bool] = []  # set once --serve has shut down cleanly


def exit_now(code: int) -> None:
    """After a clean --serve shutdown every request is answered and every log entry fsynced; what remains is the
    interpreter freeing torch, transformers and the model (2.4-3.3 s measured on a 2-core box; about 20 s on the
    loaded box of issue 30), after uvicorn's "Finished server process". Exit without it."""
    log.info("server stopped; exit %d", code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    code = run_stage(main, InferenceConfig, description=__doc__)
    if SERVED and code == 0:
        exit_now(code)
    sys.exit(code)
