"""Quantisation on real weights: a real Hugging Face model folder (SmolLM2-135M-Instruct by default) in
transformers fp32 against its llama.cpp exports F16, Q8_0 and Q4_K_M, with and without prompt lookup: time per
grounded recommendation end to end, peak RSS, and greedy-token agreement with F16 over the same prompts.

    # after `python download_model.py --model smollm2-135m` (and the data stage, for grounded prompts)
    nice -n 10 python bench/gguf_real.py --model-dir models/smollm2-135m --records 4 --threads 1 2

    # the smallest run
    python bench/gguf_real.py --model-dir models/smollm2-135m --records 1 --e2e-tokens 16 \\
        --agreement-tokens 8 --threads 1 --output /tmp/gguf_real.json

The folder is exported by export_model.py's code (``--base-only``) into a temporary directory. Each contender
then runs in a fresh process (its peak RSS, VmHWM, is its own; a crash is reported with its signal, a hang
after --child-timeout): the records' prompts are those inference.py builds, with the passages BM25 retrieves
from --index when it exists (else none). Agreement: F16's greedy tokens (no grammar, --agreement-tokens per
prompt) are fed to every other contender, whose top token is compared at each position.
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import ROOT  # noqa: E402
from gguf_latency import TARGET_RSS_GB, TARGET_SPEEDUP, in_fresh_process, peak_rss_mib  # noqa: E402

from medlora.common.cli import UsageError, run_stage  # noqa: E402

log = logging.getLogger("gguf_real")
QUANTS = ("F16", "Q8_0", "Q4_K_M")


@dataclass
class GGUFRealConfig:
    model_dir: str = field(default="models/smollm2-135m", metadata={"help": "the real HF model folder"})
    index: str = field(default="data/medquad/index", metadata={"help": "BM25 index (absent: no passages)"})
    k: int = field(default=3, metadata={"help": "passages per record"})
    records: int = field(default=4, metadata={"help": "recommendations per contender (examples/patients)"})
    e2e_tokens: int = field(default=256, metadata={"help": "budget of each recommendation"})
    agreement_tokens: int = field(default=32, metadata={"help": "greedy tokens compared per prompt"})
    threads: list[int] = field(default_factory=lambda: [1, 2], metadata={"help": "thread counts to run"})
    child_timeout: float = field(default=1800.0, metadata={"help": "seconds a contender may run"})
    output: str = field(
        default=str(ROOT / "bench" / "results" / "gguf_real.json"), metadata={"help": "JSON result"}
    )

    def validate(self) -> None:
        if self.records < 1 or self.e2e_tokens < 2 or self.agreement_tokens < 1 or min(self.threads) < 1:
            raise UsageError("--records >= 1, --e2e-tokens >= 2, --agreement-tokens >= 1, --threads >= 1")
        if not (Path(self.model_dir) / "config.json").is_file():
            raise UsageError(
                f"model folder not found: {self.model_dir} (python download_model.py --model smollm2-135m)"
            )
        common.check_output(self.output)


def cases(cfg: GGUFRealConfig) -> list[dict[str, Any]]:
    """The records, each with the passages inference.py would retrieve for it."""
    from medlora.common.schemas import load_record
    from medlora.retrieval.index import load_index, retrieve_for_record

    paths = sorted((ROOT / "examples" / "patients").glob("*.json"))
    index = None
    if Path(cfg.index).exists():
        index = load_index(Path(cfg.index).parent, cfg.index)
    else:
        log.warning("no index at %s: prompts carry no passages", cfg.index)
    out = []
    for i in range(cfg.records):
        record = load_record(paths[i % len(paths)].read_bytes())
        hits = retrieve_for_record(record, index, cfg.k, 1024) if index is not None else []
        out.append({"record": record, "passages": [h.passage for h in hits]})
    return out


def run_all(gen: Any, job: dict[str, Any]) -> dict[str, Any]:
    """Each case through generate, the safety rules and the Recommendation, as inference.py serves it."""
    from medlora.common.schemas import ModelInfo, Recommendation
    from medlora.safety.rules import apply_safety

    seconds, tokens, texts, passes = [], [], [], 0
    for case in job["cases"]:
        start = time.perf_counter()
        out = gen.generate([case["record"]], passages=[case["passages"]])[0]
        checked = apply_safety(case["record"], out.sections)
        Recommendation(**checked.sections.model_dump(), safety=checked.safety, model=ModelInfo(base="bench"))
        seconds.append(time.perf_counter() - start)
        tokens.append(out.generated_tokens)
        texts.append(out.text)
        passes += getattr(gen, "stats", {}).get("forward_passes", 0)  # llama.cpp: prompt lookup saves some
    return {"seconds_per_recommendation": statistics.mean(seconds), "seconds": seconds,
            "generated_tokens": tokens, "texts": texts, "forward_passes": passes or None}  # fmt: skip


def transformers_worker(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    from medlora.generation.hf import SectionsGenerator
    from medlora.model.loading import load_tokenizer

    common.pin_threads(job["threads"])
    model = AutoModelForCausalLM.from_pretrained(job["model_dir"], dtype=torch.float32).eval()
    gen = SectionsGenerator(model, load_tokenizer(job["model_dir"]), max_new_tokens=job["e2e_tokens"])
    result = run_all(gen, job)
    if ref := job.get("reference"):
        agree = []
        with torch.inference_mode():
            for prompt, tokens in ref:
                logits = model(torch.tensor([prompt + tokens[:-1]])).logits[0, len(prompt) - 1 :]
                agree += (logits.argmax(-1) == torch.tensor(tokens)).tolist()
        result["agreement_with_f16"] = sum(agree) / len(agree)
    return result | {"peak_rss_mib": peak_rss_mib()}


def llama_worker(job: dict[str, Any]) -> dict[str, Any]:
    import llama_cpp
    import numpy as np

    from medlora.generation.llama_backend import LlamaSectionsGenerator

    gen = LlamaSectionsGenerator(job["gguf"], max_new_tokens=job["e2e_tokens"], threads=job["threads"],
                                 prompt_lookup=job["prompt_lookup"], probe=False)  # fmt: skip
    result = run_all(gen, job)
    result["extra_bufts"] = bool(gen.llm.model_params.use_extra_bufts)
    logits = lambda: np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(gen.llm._ctx.ctx, -1),  # noqa: E731
                                           shape=(gen.n_vocab,))  # fmt: skip
    if job.get("make_reference"):  # F16: its own greedy tokens, no grammar
        ref = []
        for case in job["cases"]:
            prompt = gen.prompt_ids(case["record"], case["passages"])
            gen.llm.reset()
            gen.llm.eval(prompt)
            tokens = []
            for _ in range(job["agreement_tokens"]):
                tokens.append(int(logits().argmax()))
                gen.llm.eval(tokens[-1:])
            ref.append((prompt, tokens))
        result["reference"] = ref
    if ref := job.get("reference"):
        agree = []
        for prompt, tokens in ref:
            gen.llm.reset()
            for i, token in enumerate(tokens):
                gen.llm.eval(prompt if i == 0 else tokens[i - 1 : i])
                agree.append(int(logits().argmax()) == token)
        result["agreement_with_f16"] = sum(agree) / len(agree)
    return result | {"peak_rss_mib": peak_rss_mib()}


def main(cfg: GGUFRealConfig) -> dict[str, Any]:
    import export_model

    result: dict[str, Any] = {"benchmark": "gguf_real", "config": dict(cfg.__dict__)}
    result["environment"] = common.environment("cpu", 1)
    from medlora.generation import llama_cpu

    result["llama_cpp_system_info"] = llama_cpu.system_info()
    jobs_cases = cases(cfg)
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="gguf-real-") as tmp:
        export_cfg = export_model.ExportConfig(base_model=cfg.model_dir, base_only=True, name="model",
                                               output_dir=str(Path(tmp) / "gguf"))  # fmt: skip
        export_cfg.validate()
        with common.Timer() as t:
            out_dir = export_model.main(export_cfg)
        result["export_s"] = round(t.seconds, 1)
        files = {q: out_dir / f"model-{q}.gguf" for q in QUANTS}
        result["sizes_mb"] = {q: round(p.stat().st_size / 1e6, 1) for q, p in files.items()}
        reference = None
        for threads in cfg.threads:
            base = {"cases": jobs_cases, "e2e_tokens": cfg.e2e_tokens, "threads": threads,
                    "agreement_tokens": cfg.agreement_tokens}  # fmt: skip
            for quant in QUANTS:
                for lookup in (False, True):
                    name = f"llama.cpp {quant}{' + prompt lookup' if lookup else ''}, {threads} thread(s)"
                    log.info("%s", name)
                    extra = {}
                    if reference is None:
                        extra = {"make_reference": True}
                    elif threads == cfg.threads[0] and not lookup and quant != "F16":
                        extra = {"reference": reference}
                    r = in_fresh_process(llama_worker, {**base, **extra, "gguf": str(files[quant]),
                                                        "prompt_lookup": lookup, "name": name}, cfg.child_timeout)  # fmt: skip
                    reference = reference or r.pop("reference", None)
                    runs[name] = r
                    log.info("%s: %s", name, {k: v for k, v in r.items() if k != "texts"})
                    if lookup:
                        plain = runs[name.replace(" + prompt lookup", "")]
                        r["same_output_as_plain"] = r["texts"] == plain["texts"]
            name = f"transformers fp32, {threads} thread(s)"
            log.info("%s", name)
            extra = {"reference": reference} if threads == cfg.threads[0] else {}
            runs[name] = in_fresh_process(transformers_worker, {**base, **extra, "model_dir": cfg.model_dir,
                                                                "name": name}, cfg.child_timeout)  # fmt: skip
            log.info("%s: %s", name, {k: v for k, v in runs[name].items() if k != "texts"})
    for r in runs.values():
        r.pop("texts")
    result["runs"] = runs
    result["targets"] = {}
    for threads in cfg.threads:
        hf = runs[f"transformers fp32, {threads} thread(s)"]
        for quant in ("Q8_0", "Q4_K_M"):
            # A prompt-lookup row counts only where its outputs are the plain row's.
            name, best = min(((n, r) for n, r in runs.items() if n.startswith(f"llama.cpp {quant}")
                              and n.endswith(f", {threads} thread(s)") and r.get("same_output_as_plain", True)),
                             key=lambda nr: nr[1]["seconds_per_recommendation"])  # fmt: skip
            rss = best["peak_rss_mib"] * 2**20 / 1e9
            result["targets"][f"{quant}, {threads} thread(s)"] = {
                "row": name, "target": TARGET_SPEEDUP, "peak_rss_gb": round(rss, 2), "rss_target_gb": TARGET_RSS_GB,
                "speedup_end_to_end": round(hf["seconds_per_recommendation"] / best["seconds_per_recommendation"], 2),
                "mean_tokens": statistics.mean(best["generated_tokens"]),
                "fp32_mean_tokens": statistics.mean(hf["generated_tokens"]),
            }  # fmt: skip
    common.write_results(common.check_output(cfg.output), result)
    print_table(result, cfg)
    return result


def print_table(r: dict[str, Any], cfg: GGUFRealConfig) -> None:
    print(f"\n{cfg.model_dir}: {cfg.records} grounded recommendation(s) per row, budget {cfg.e2e_tokens} tokens, "
          f"sizes MB {r['sizes_mb']}")  # fmt: skip
    rows = []
    for name, x in r["runs"].items():
        hf = r["runs"][f"transformers fp32, {name.split(', ')[1]}"]["seconds_per_recommendation"]
        rows.append([
            name, x["seconds_per_recommendation"], hf / x["seconds_per_recommendation"],
            statistics.mean(x["generated_tokens"]), x["peak_rss_mib"] / 1024,
            f"{x['agreement_with_f16']:.1%}" if "agreement_with_f16" in x else "-",
            {True: "yes", False: "NO"}.get(x.get("same_output_as_plain"), "-"),
        ])  # fmt: skip
    heads = ["path", "s / recommendation", "speedup vs fp32", "mean tokens", "peak RSS GiB",
             "greedy agreement with F16", "same output as plain"]  # fmt: skip
    print(common.table(heads, rows))
    for t, x in r["targets"].items():
        print(
            f"{t}: {x['row']} {x['speedup_end_to_end']}x fp32 (goal {x['target']}x) writing {x['mean_tokens']} "
            f"tokens a recommendation to fp32's {x['fp32_mean_tokens']}, peak RSS {x['peak_rss_gb']} GB (goal <= "
            f"{x['rss_target_gb']} GB)"
        )


if __name__ == "__main__":
    sys.exit(run_stage(main, GGUFRealConfig, description=__doc__))
