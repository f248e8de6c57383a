"""llama.cpp's extra buffer types (weight repacking; AMX where built with it) on against off: prefill and
decode speed of each GGUF, the two settings interleaved in one process, best of --repeats.

    python bench/llama_extra_bufts.py --gguf /tmp/smol-gguf/smollm2-Q4_K_M.gguf /tmp/smol-gguf/smollm2-Q8_0.gguf

medlora/generation/llama_cpu.py turns them off only where llama.cpp reports AMX (the crash of issue 20); this measures
what that costs on a CPU without AMX, where off loses the repacking alone.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import ROOT  # noqa: E402

from medlora.common.cli import UsageError, run_stage  # noqa: E402


@dataclass
class ExtraBuftsConfig:
    gguf: list[str] = field(default_factory=list, metadata={"help": "GGUF files to measure"})
    prompt_tokens: int = field(default=256, metadata={"help": "prefill length"})
    decode_tokens: int = field(default=64, metadata={"help": "tokens decoded one at a time"})
    threads: int = field(default=1, metadata={"help": "llama.cpp threads"})
    repeats: int = field(default=3, metadata={"help": "interleaved repeats (best kept)"})
    output: str = field(default=str(ROOT / "bench" / "results" / "llama_extra_bufts.json"))

    def validate(self) -> None:
        missing = [g for g in self.gguf if not Path(g).is_file()]
        if not self.gguf or missing:
            raise UsageError(
                f"--gguf: give existing GGUF files (missing: {' '.join(missing) or 'none given'})"
            )
        common.check_output(self.output)


def measure(llm: Any, cfg: ExtraBuftsConfig) -> tuple[float, float]:
    tokens = [(i * 7919) % 1000 + 100 for i in range(cfg.prompt_tokens)]
    llm.reset()
    start = time.perf_counter()
    llm.eval(tokens)
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(cfg.decode_tokens):
        llm.eval([100 + i])
    return prefill, (time.perf_counter() - start) / cfg.decode_tokens


def main(cfg: ExtraBuftsConfig) -> dict[str, Any]:
    from medlora.generation.llama_backend import load_gguf
    from medlora.generation.llama_cpu import system_info

    result: dict[str, Any] = {"benchmark": "llama_extra_bufts", "config": dict(cfg.__dict__)}
    result["llama_cpp_system_info"] = system_info()
    rows = []
    for path in cfg.gguf:
        llms = {on: load_gguf(path, cfg.threads, extra_bufts=on) for on in (True, False)}
        best = {on: (float("inf"), float("inf")) for on in llms}
        for r in range(cfg.repeats):
            for on in common.rotated([True, False], r):
                p, d = measure(llms[on], cfg)
                best[on] = (min(best[on][0], p), min(best[on][1], d))
        for llm in llms.values():
            llm.close()
        result[Path(path).name] = {("on" if on else "off"): {"prefill_s": p, "decode_s_per_token": d}
                                   for on, (p, d) in best.items()}  # fmt: skip
        rows.append(
            [Path(path).name, best[True][0], best[False][0], best[True][1] * 1000, best[False][1] * 1000]
        )
    common.write_results(common.check_output(cfg.output), result)
    heads = ["file", "prefill s (on)", "prefill s (off)", "decode ms/token (on)", "decode ms/token (off)"]
    print(f"\n{cfg.prompt_tokens}-token prefill, {cfg.decode_tokens} decoded, {cfg.threads} thread(s), best of "
          f"{cfg.repeats}; extra buffer types on (repacking) vs off")  # fmt: skip
    print(common.table(heads, rows))
    return result


if __name__ == "__main__":
    sys.exit(run_stage(main, ExtraBuftsConfig, description=__doc__))
