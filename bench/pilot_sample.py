"""Pilot (issue 26): which part of the recipe's training sample drives every decision to "empty"?

    OMP_NUM_THREADS=1 python bench/pilot_sample.py mix800   # the recipe's own sample (run 2: 800 rows, 80 QA, rare boost, seed 42)
    OMP_NUM_THREADS=1 python bench/pilot_sample.py noqa     # the same sample without its QA rows
    OMP_NUM_THREADS=1 python bench/pilot_sample.py norare   # 800 rows drawn without the rare-section boost

The recipe's run-2 settings as ``bench/pilot_masked_lists.py`` (lr 5e-4 on a 200-step cosine stopped at step 50,
class-balanced decisions x2, LoRA on the top 10 layers, fp32), the sample tokenised and cached exactly as
``train_model.py`` does (``training.load_split``). P(empty) teacher-forced at each section's decision on the same
10 train rows, measured twice: on the model in memory, then on the adapter saved and loaded back as the later
stages load it (``model.loading.load_model``), so a fault in saving or loading shows apart from the training.
About 17 minutes each on one thread; two run side by side on two cores. docs/real-model.md reports the runs.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BASE, DATA = "models/smollm2-135m", Path("data/medquad")
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MODES = {"mix800": (True, False), "noqa": (True, True), "norare": (False, False)}  # (rare boost, drop QA)


def probe_rows() -> list[dict]:
    from medlora.common.files import read_jsonl

    probe = [
        r for r in read_jsonl(DATA / "train.jsonl") if r.get("kind") == "treatment" and r.get("passages")
    ]
    random.Random(1).shuffle(probe)
    med = lambda r: bool(json.loads(r["messages"][-1]["content"]).get("medications"))  # noqa: E731
    return [r for r in probe if med(r)][:5] + [r for r in probe if not med(r) and not r.get("abstain")][:5]


def report(label: str, model, tok, rows: list[dict]) -> None:
    from medlora.data.decisions import decision_margins, p_empty

    for r in rows:
        sections = decision_margins(model, tok, [r])[0]["sections"]
        line = {k: [round(p_empty(v["margin"]), 4), int(v["filled"])] for k, v in sections.items()}
        print(label, json.dumps(line), flush=True)


def setup():
    """SmolLM2 with LoRA as the recipe adds it (top 10 layers, fp32, one thread), and its tokenizer."""
    import torch

    from medlora.model.loading import load_tokenizer
    from medlora.training import run as training

    torch.set_num_threads(1)
    tok = load_tokenizer(BASE)
    tok.pad_token_id = training.pad_token_id(tok)
    model, _ = training.build_lora_model(BASE, torch.float32, 16, 32, 0.05, PROJECTIONS, top_layers=10)
    return model, tok


def train_pilot(model, tok, ds, out: Path) -> None:
    """Run 2's settings (lr 5e-4 on a 200-step cosine, class-balanced decisions x2), stopped at step 50 where
    the recipe's first checkpoint is; the model is left in eval mode."""
    import torch
    from transformers import Trainer, TrainerCallback

    from medlora.data.decisions import weighted_trainer
    from medlora.training import objective
    from medlora.training.config import TrainConfig, training_args

    empty = objective.empty_token_ids(tok)
    rates = objective.fill_rates(ds, empty)
    print("fill rates", rates, flush=True)
    balanced = (empty, objective.balanced_weights(rates, 2.0))
    cfg = TrainConfig(base_model=BASE, output_dir=str(out), batch_size=1, precision="fp32",
                      gradient_accumulation_steps=4, learning_rate=5e-4, max_steps=200, warmup_ratio=0.05,
                      logging_steps=10, device="cpu", seed=42)  # fmt: skip
    args = training_args(cfg, "cpu", torch.float32, has_eval=False)
    args.save_strategy = "no"

    class Stop(TrainerCallback):
        def on_step_end(self, a, state, control, **kwargs):
            control.should_training_stop = state.global_step >= 50

    collator = objective.PadCollator(tok.pad_token_id, None, 2.0, balanced)
    trainer = weighted_trainer(Trainer)(model=model, args=args, train_dataset=ds, data_collator=collator,
                                        processing_class=tok, callbacks=[Stop()])  # fmt: skip
    start = time.time()
    trainer.train()
    print(f"trained in {time.time() - start:.0f} s", flush=True)
    model.eval()


def main() -> None:
    from medlora.model.loading import load_model
    from medlora.training import run as training

    mode = sys.argv[1] if len(sys.argv) == 2 else ""
    if mode not in MODES:
        sys.exit(f"usage: python bench/pilot_sample.py {{{'|'.join(MODES)}}}")
    rare, drop_qa = MODES[mode]
    model, tok = setup()
    mix = {"treatment_share": 0.9, "rare_boost": rare, "seed": 42}
    fp = training.tokenizer_fingerprint(BASE)
    ds, stats = training.load_split(DATA / "train.jsonl", tok, fp, 1152, DATA / "cache", 800, mix)
    if drop_qa:
        ds = ds.filter(lambda d: len(d) > 0, input_columns="decisions")
    print(mode, "examples", len(ds), stats, flush=True)
    out = Path(f"/tmp/pilot_sample_{mode}")
    train_pilot(model, tok, ds, out)
    rows = probe_rows()
    report("memory", model, tok, rows)
    model.save_pretrained(out / "adapter")
    tok.save_pretrained(out / "adapter")
    loaded, ltok, _ = load_model(BASE, out / "adapter", "cpu", "fp32", merge=False)
    report("loaded", loaded, ltok, rows)


if __name__ == "__main__":
    main()
