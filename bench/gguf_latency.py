"""llama.cpp GGUF (F16, Q8_0, Q4_K_M) against transformers fp32 at TinyLlama's full shape: one whole
recommendation each with the schema grammar on, at 1 and 2 threads, peak RSS, decode against the memory
bandwidth limit, and how often the quantised files pick the fp32 model's next token.

    # CPU, full shape (22 layers, hidden 2048), random weights, TinyLlama's tokenizer; about 15 min on 2 cores
    python bench/gguf_latency.py

    # the smallest run (what tests/test_bench.py does)
    python bench/gguf_latency.py --shape small --layers 1 --e2e-tokens 8 --agreement-tokens 8 \\
        --threads 1 --output /tmp/gguf.json

One process builds the random-weight model, saves it, exports it with medlora.export.gguf (the code
export_model.py runs) and measures memory bandwidth (a large numpy copy, best of 3). Each contender then runs
in a fresh process, so its peak RSS (VmHWM) is its own: the transformers path is SectionsGenerator on the fp32
model, the llama.cpp path LlamaSectionsGenerator on the GGUF, each followed by the safety rules and the
Recommendation, as inference.py serves them. Prefill is the time to the first new token; decode the mean time
per later token, grammar included. The bandwidth limit of decoding is the bytes of weights read per token
(all but the embedding table, of which one row is read) over the measured bandwidth. Agreement: the fp32
model's 64 greedy tokens (no grammar) are fed to each GGUF and its top token compared at each position.
Random weights make the top two logits close, so agreement is a lower bound for a trained model.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import ROOT, TINYLLAMA_DIR  # noqa: E402

from medlora.common.cli import UsageError, run_stage  # noqa: E402

log = logging.getLogger("gguf_latency")

QUANTS = ("F16", "Q8_0", "Q4_K_M")
TARGET_SPEEDUP, TARGET_RSS_GB = 6.0, 1.5  # issue 20's goal, at 1 and at 2 threads


@dataclass
class GGUFLatencyConfig:
    tokenizer_dir: str = field(default=str(TINYLLAMA_DIR), metadata={"help": "TinyLlama's tokenizer.model"})
    model_config: str = field(
        default=str(TINYLLAMA_DIR / "config.json"),
        metadata={"help": "architecture to build (random weights)"},
    )
    record: str = field(
        default=str(ROOT / "examples" / "patients" / "hypertension_diabetes.json"),
        metadata={"help": "the patient record of the recommendation"},
    )
    shape: Literal["full", "small"] = field(
        default="full", metadata={"help": "full TinyLlama shape, or the scaled-down one (smoke tests)"}
    )
    layers: int = field(default=0, metadata={"help": "override the number of layers (0: the shape's)"})
    e2e_tokens: int = field(default=256, metadata={"help": "budget of the recommendation"})
    agreement_tokens: int = field(default=64, metadata={"help": "tokens compared with the fp32 model"})
    threads: list[int] = field(default_factory=lambda: [1, 2], metadata={"help": "thread counts to run"})
    seed: int = field(default=0, metadata={"help": "seed of the random weights"})
    prompt_lookup_rows: bool = field(default=True, metadata={"help": "rows with prompt-lookup drafting too"})
    extra_bufts_rows: bool = field(
        default=False, metadata={"help": "rows with llama.cpp's extra buffer types forced on and off"}
    )
    child_timeout: float = field(default=1800.0, metadata={"help": "seconds a contender may run"})
    output: str = field(
        default=str(ROOT / "bench" / "results" / "gguf_latency.json"), metadata={"help": "JSON result"}
    )

    def validate(self) -> None:
        if self.e2e_tokens < 2 or self.agreement_tokens < 1 or min(self.threads) < 1 or self.layers < 0:
            raise UsageError("--e2e-tokens >= 2, --agreement-tokens >= 1, --threads >= 1, --layers >= 0")
        common.check_output(self.output)


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def bandwidth_gbs(mib: int = 1024, repeats: int = 3) -> float:
    """Bytes read plus bytes written per second by one core copying a large array (best of ``repeats``)."""
    import numpy as np

    src = np.ones(mib * 2**20 // 8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


def transformers_worker(job: dict[str, Any]) -> dict[str, Any]:
    """One recommendation through SectionsGenerator on the fp32 model; also its greedy reference tokens."""
    import torch
    from inference_latency import Instrumented, TokenClock
    from transformers import AutoModelForCausalLM

    from medlora.generation.hf import SectionsGenerator
    from medlora.model.loading import load_tokenizer

    common.pin_threads(job["threads"])
    model = AutoModelForCausalLM.from_pretrained(job["hf_dir"], dtype=torch.float32).eval()
    tokenizer = load_tokenizer(job["hf_dir"])
    clock = TokenClock("cpu")
    gen = SectionsGenerator(Instrumented(model, clock), tokenizer, max_new_tokens=job["e2e_tokens"])
    start = time.perf_counter()
    out = recommend(gen, job["record"])
    e2e = time.perf_counter() - start
    result = {
        **clock.timing(),
        "seconds": e2e,
        "generated_tokens": out.generated_tokens,
        "finish": out.finish,
    }
    start = time.perf_counter()
    recommend(gen, job["record"])  # the next request, as a server sees it (this path keeps no cache)
    result["next_seconds"] = time.perf_counter() - start
    if job.get("reference_tokens"):
        prompt = gen.prompt_ids(load_record(job["record"]))
        with torch.inference_mode():
            seq = model.generate(
                input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                max_new_tokens=job["reference_tokens"], min_new_tokens=job["reference_tokens"], do_sample=False,
                pad_token_id=tokenizer.pad_token_id or 0,
            )  # fmt: skip
        result["reference"] = {"prompt": prompt, "tokens": seq[0, len(prompt) :].tolist()}
    return result | {"peak_rss_mib": peak_rss_mib()}


def llama_worker(job: dict[str, Any]) -> dict[str, Any]:
    """One recommendation through LlamaSectionsGenerator; the top-token agreement with the fp32 reference."""
    import llama_cpp
    import numpy as np

    from medlora.generation.llama_backend import LlamaSectionsGenerator

    gen = LlamaSectionsGenerator(job["gguf"], max_new_tokens=job["e2e_tokens"], threads=job["threads"],
                                 prompt_lookup=job.get("prompt_lookup", False), probe=False,
                                 extra_bufts=job.get("extra_bufts"))  # fmt: skip
    start = time.perf_counter()
    out = recommend(gen, job["record"])
    e2e = time.perf_counter() - start
    stats = gen.stats
    decode = (e2e - stats["prefill_s"]) / max(out.generated_tokens - 1, 1)
    result = {"prefill_s": stats["prefill_s"], "decode_s_per_token": decode, "seconds": e2e,
              "generated_tokens": out.generated_tokens, "finish": out.finish, "text": out.text,
              "forward_passes": stats["forward_passes"], "drafted": stats["drafted"],
              "accepted": stats["accepted"],
              "extra_bufts": bool(gen.llm.model_params.use_extra_bufts)}  # fmt: skip
    start = time.perf_counter()
    again = recommend(gen, job["record"])  # the next request: the fixed instructions are still in the cache
    result.update(next_seconds=time.perf_counter() - start, next_prefill_s=gen.stats["prefill_s"],
                  next_same_output=again.text == out.text)  # fmt: skip
    if ref := job.get("reference"):
        gen.llm.reset()
        agree = []
        for i, token in enumerate(ref["tokens"]):
            gen.llm.eval(ref["prompt"] if i == 0 else ref["tokens"][i - 1 : i])
            ptr = llama_cpp.llama_get_logits_ith(gen.llm._ctx.ctx, -1)
            agree.append(int(np.ctypeslib.as_array(ptr, shape=(gen.n_vocab,)).argmax()) == token)
        result["top1_agreement"] = sum(agree) / len(agree)
    return result | {"peak_rss_mib": peak_rss_mib()}


def load_record(path: str):
    from medlora.common.schemas import load_record as parse

    return parse(Path(path).read_bytes())


def recommend(gen: Any, record_path: str) -> Any:
    """What inference.py does for one record without retrieval: generate, safety rules, Recommendation."""
    from medlora.common.schemas import ModelInfo, Recommendation
    from medlora.safety.rules import apply_safety

    record = load_record(record_path)
    out = gen.generate([record], batch_size=1)[0]
    checked = apply_safety(record, out.sections)
    Recommendation(**checked.sections.model_dump(), safety=checked.safety, model=ModelInfo(base="random"))
    return out


def _child(worker, job, conn) -> None:
    # every generation here runs out of budget on purpose
    logging.getLogger("medlora").setLevel(logging.ERROR)
    try:
        conn.send(worker(job))
    except BaseException as e:  # reported by the parent, which names the contender
        conn.send({"error": f"{type(e).__name__}: {e}"})
    conn.close()


def in_fresh_process(worker, job: dict[str, Any], timeout: float = 1800.0) -> dict[str, Any]:
    """``worker(job)`` in a fresh process; its death (EOF on the pipe, with its exit signal) or a run past
    ``timeout`` seconds is a RuntimeError naming the contender, raised as soon as it happens."""
    from medlora.generation.llama_cpu import describe_exit

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(worker, job, child), daemon=True)
    proc.start()
    child.close()  # the child holds the only write end now: its death is EOF here, not a wait forever
    try:
        if not parent.poll(timeout):
            proc.kill()
            proc.join()
            raise RuntimeError(f"{job.get('name')}: no result within {timeout:.0f} s (child killed)")
        try:
            result = parent.recv()
        except EOFError:
            proc.join(10)
            raise RuntimeError(
                f"{job.get('name')}: the child process died ({describe_exit(proc.exitcode)}) before reporting"
            ) from None
    finally:
        parent.close()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    if "error" in result:
        raise RuntimeError(f"{job.get('name')}: {result['error']}")
    return result


def build(cfg: GGUFLatencyConfig, work: Path) -> dict[str, Any]:
    """The random model saved as an HF directory, and its GGUF exports; sizes and bytes read per token."""
    import torch
    from transformers import AutoModelForCausalLM

    from medlora.export import gguf as export

    arch, desc = common.model_config(Path(cfg.model_config), cfg.shape, cfg.layers)
    tokenizer = common.load_bench_tokenizer(Path(cfg.tokenizer_dir))
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_config(arch, dtype=torch.float32).eval()
    hf_dir = work / "hf"
    model.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    files, timings = {}, {}
    with common.Timer() as t:
        files["F16"] = work / "model-F16.gguf"
        export.write_f16_gguf(model, tokenizer, Path(cfg.tokenizer_dir), files["F16"], "bench")
    timings["F16"] = round(t.seconds, 1)
    embedding_params = model.get_input_embeddings().weight.numel()
    params = sum(p.numel() for p in model.parameters())
    del model
    for quant in QUANTS[1:]:
        files[quant] = work / f"model-{quant}.gguf"
        with common.Timer() as t:
            export.quantize(files["F16"], files[quant], quant)
        timings[quant] = round(t.seconds, 1)
    sizes = {q: p.stat().st_size for q, p in files.items()}
    # Bytes read per decoded token: every tensor but the embedding table (one row of it).
    read = {"transformers fp32": 4 * (params - embedding_params)}
    for quant, path in files.items():
        read[f"llama.cpp {quant}"] = sizes[quant] - embedding_bytes(path)
    return {"description": desc, "hf_dir": str(hf_dir), "files": {q: str(p) for q, p in files.items()},
            "sizes": sizes, "export_s": timings, "bytes_per_token": read}  # fmt: skip


def llama_variants(cfg: GGUFLatencyConfig) -> list[tuple[str, dict[str, Any]]]:
    """Each GGUF's rows: plain (extra buffer types as the backend chooses them), with prompt lookup, and,
    with --extra-bufts-rows, with llama.cpp's extra buffer types (weight repacking) on and off."""
    variants = [("", {"prompt_lookup": False})]
    if cfg.prompt_lookup_rows:
        variants.append((" + prompt lookup", {"prompt_lookup": True}))
    if cfg.extra_bufts_rows:
        variants += [(" extra bufts on", {"extra_bufts": True}), (" extra bufts off", {"extra_bufts": False})]
    return variants


def contender(name: str) -> str:
    """``llama.cpp Q4_K_M`` of ``llama.cpp Q4_K_M + prompt lookup, 2 thread(s)``: the file the row reads."""
    head = name.split(",")[0]
    return " ".join(head.split()[:2]) if head.startswith("llama.cpp") else head


def embedding_bytes(path: Path) -> int:
    from gguf import GGUFReader

    return next(int(t.n_bytes) for t in GGUFReader(path).tensors if t.name == "token_embd.weight")


def main(cfg: GGUFLatencyConfig) -> dict[str, Any]:
    common.require([
        (Path(cfg.tokenizer_dir) / "tokenizer.model", "TinyLlama tokenizer (../shared/tinyllama/tokenizer.model)"),
        (Path(cfg.model_config), "TinyLlama config (../shared/tinyllama/config.json)"),
        (Path(cfg.record), "patient record"),
    ])  # fmt: skip
    result: dict[str, Any] = {"benchmark": "gguf_latency", "config": dict(cfg.__dict__)}
    result["environment"] = common.environment("cpu", 1)
    with tempfile.TemporaryDirectory(prefix="gguf-bench-") as tmp:
        log.info("building the random model and its GGUF exports")
        built = build(cfg, Path(tmp))
        result["model"] = {k: built[k] for k in ("description", "sizes", "export_s", "bytes_per_token")}
        bandwidth = bandwidth_gbs()
        result["memory_bandwidth_gbs"] = round(bandwidth, 2)
        log.info("memory bandwidth (numpy copy, read + write): %.1f GB/s", bandwidth)
        runs: dict[str, dict[str, Any]] = {}
        texts: dict[str, str] = {}
        reference = None
        for threads in cfg.threads:
            job = {"record": cfg.record, "e2e_tokens": cfg.e2e_tokens, "threads": threads}
            name = f"transformers fp32, {threads} thread(s)"
            log.info("%s", name)
            ref_job = {"reference_tokens": cfg.agreement_tokens} if reference is None else {}
            runs[name] = in_fresh_process(transformers_worker, {**job, **ref_job, "hf_dir": built["hf_dir"],
                                                                "name": name}, cfg.child_timeout)  # fmt: skip
            reference = reference or runs[name].pop("reference")
            for quant in QUANTS:
                for variant, settings in llama_variants(cfg):
                    name = f"llama.cpp {quant}{variant}, {threads} thread(s)"
                    log.info("%s", name)
                    extra = {"reference": reference} if threads == cfg.threads[0] and not variant else {}
                    r = in_fresh_process(llama_worker, {
                        **job, **extra, **settings, "gguf": built["files"][quant], "name": name,
                    }, cfg.child_timeout)  # fmt: skip
                    texts[name] = r.pop("text")
                    if variant:  # prompt lookup must not change a byte of the output
                        r["same_output_as_plain"] = (
                            texts[name] == texts[f"llama.cpp {quant}, {threads} thread(s)"]
                        )
                    runs[name] = r
    for name, r in runs.items():
        read = built["bytes_per_token"][contender(name)]
        r["bytes_per_token"] = read
        r["bandwidth_limit_s_per_token"] = read / (bandwidth * 1e9)
        r["share_of_bandwidth_limit"] = r["bandwidth_limit_s_per_token"] / r["decode_s_per_token"]
    result["runs"] = runs
    result["targets"] = targets(runs, cfg.threads)
    common.write_results(common.check_output(cfg.output), result)
    print_table(result, cfg)
    return result


def targets(runs: dict[str, dict[str, Any]], threads: list[int]) -> dict[str, Any]:
    """Per thread count, the fastest Q4_K_M row (plain or with prompt lookup) against fp32 end to end."""
    out = {}
    for t in threads:
        base = runs[f"transformers fp32, {t} thread(s)"]["seconds"]
        name, q4 = min(((n, r) for n, r in runs.items() if n.startswith("llama.cpp Q4_K_M") and n.endswith(
            f", {t} thread(s)") and "bufts" not in n), key=lambda nr: nr[1]["seconds"])  # fmt: skip
        rss = q4["peak_rss_mib"] * 2**20 / 1e9
        nxt = runs[f"transformers fp32, {t} thread(s)"]["next_seconds"] / q4["next_seconds"]
        out[f"{t} thread(s)"] = {"row": name,
            "speedup_end_to_end": {"measured": round(base / q4["seconds"], 2), "target": TARGET_SPEEDUP,
                                   "met": base / q4["seconds"] >= TARGET_SPEEDUP},
            "speedup_next_request": {"measured": round(nxt, 2), "target": TARGET_SPEEDUP,
                                     "met": nxt >= TARGET_SPEEDUP},
            "peak_rss_gb": {"measured": round(rss, 2), "target": TARGET_RSS_GB, "met": rss <= TARGET_RSS_GB},
        }  # fmt: skip
    return out


def print_table(r: dict[str, Any], cfg: GGUFLatencyConfig) -> None:
    print(
        f"\nOne recommendation ({cfg.e2e_tokens} new tokens budget, grammar on): {r['model']['description']}"
    )
    print(f"memory bandwidth (numpy copy, read + write, one core): {r['memory_bandwidth_gbs']:.1f} GB/s")
    rows = []
    for name, x in r["runs"].items():
        fp32 = r["runs"][f"transformers fp32, {name.split(', ')[1]}"]
        base, base_next = fp32["seconds"], fp32["next_seconds"]
        rows.append([
            name, x["prefill_s"], x["decode_s_per_token"] * 1000, x["seconds"], base / x["seconds"],
            x["next_seconds"], base_next / x["next_seconds"],
            x["generated_tokens"], x["peak_rss_mib"] / 1024, f"{x['share_of_bandwidth_limit']:.0%}",
            f"{x['top1_agreement']:.0%}" if "top1_agreement" in x else "-", x.get("forward_passes", "-"),
            {True: "yes", False: "NO"}.get(x.get("same_output_as_plain"), "-"),
        ])  # fmt: skip
    heads = ["path", "prefill s", "decode ms/token", "end to end s", "speedup", "next request s", "speedup (next)",
             "tokens", "peak RSS GiB",
             "of bandwidth limit", "top-1 agreement", "forward passes", "same output"]  # fmt: skip
    print(common.table(heads, rows))
    for t, x in r["targets"].items():
        print(
            f"{t}: {x['row']} vs fp32 end to end {x['speedup_end_to_end']['measured']}x, next request "
            f"{x['speedup_next_request']['measured']}x (target >= {TARGET_SPEEDUP}x); peak RSS {x['peak_rss_gb']['measured']} GB (target <= {TARGET_RSS_GB} GB)"
        )


if __name__ == "__main__":
    sys.exit(run_stage(main, GGUFLatencyConfig, description=__doc__))
