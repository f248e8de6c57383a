"""Pilot (issue 26): do the always-empty ``"side_effects":[]`` lists push every section's decision to "empty"?

    OMP_NUM_THREADS=1 python bench/pilot_masked_lists.py mask    # their closing "]" left out of the loss
    OMP_NUM_THREADS=1 python bench/pilot_masked_lists.py plain   # the loss before: their "]" supervised

50 steps of 4 on 200 seeded train treatment examples with the recipe's run-2 settings (lr 5e-4 on a 200-step
cosine, class-balanced decisions x2, LoRA on the top 10 layers, fp32), then P(empty) teacher-forced at each
section's decision on 10 train rows (5 whose target fills medications, 5 whose target leaves it empty), one JSON
line per row: {section: [P(empty), target filled]}. About 17 minutes on one thread. Needs models/smollm2-135m
and data/medquad (download_model.py). docs/real-model.md reports the run.
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

BASE, DATA = "models/smollm2-135m", "data/medquad/train.jsonl"
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def features(tok, rows: list[dict], mask: bool) -> tuple[list[dict], int]:
    from medlora.data.prompts import IGNORE_INDEX, encode_example

    feats, masked = [], 0
    for r in rows:
        enc = encode_example(tok, r["messages"], 1152, kind="treatment")
        if enc is None:
            continue
        labels = list(enc.labels)
        first = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
        for t in range(max(first, 4), len(labels)):
            closes = tok.decode([enc.input_ids[t]]).startswith("]")
            if closes and tok.decode(enc.input_ids[t - 4 : t]).endswith('effects":['):
                # mask: out of the loss; plain: supervised, as in training
                labels[t] = IGNORE_INDEX if mask else enc.input_ids[t]
                masked += mask
        decisions = sorted((enc.decisions or {}).values())
        feats.append({"input_ids": enc.input_ids, "labels": labels, "decisions": decisions,
                      "length": len(enc.input_ids)})  # fmt: skip
    return feats, masked


def main() -> None:
    import datasets
    import torch
    from transformers import Trainer, TrainerCallback

    from medlora.common.files import read_jsonl
    from medlora.data.decisions import decision_margins, p_empty, weighted_trainer
    from medlora.model.loading import load_tokenizer
    from medlora.training import objective
    from medlora.training import run as training
    from medlora.training.config import TrainConfig, training_args

    torch.set_num_threads(1)
    tok = load_tokenizer(BASE)
    tok.pad_token_id = training.pad_token_id(tok)
    model, _ = training.build_lora_model(BASE, torch.float32, 16, 32, 0.05, PROJECTIONS, top_layers=10)
    rows = [r for r in read_jsonl(DATA) if r.get("kind") == "treatment"]
    random.Random(7).shuffle(rows)
    feats, masked = features(tok, rows[:200], sys.argv[1:] == ["mask"])
    print("examples", len(feats), "masked side_effects closings", masked, flush=True)
    ds = datasets.Dataset.from_list(feats)
    empty = objective.empty_token_ids(tok)
    balanced = (empty, objective.balanced_weights(objective.fill_rates(ds, empty), 2.0))
    cfg = TrainConfig(base_model=BASE, output_dir="/tmp/pilot_masked_lists", batch_size=1, precision="fp32",
                      gradient_accumulation_steps=4, learning_rate=5e-4, max_steps=200, warmup_ratio=0.05,
                      logging_steps=10, device="cpu")  # fmt: skip
    args = training_args(cfg, "cpu", torch.float32, has_eval=False)
    args.save_strategy = "no"

    class Stop(TrainerCallback):  # the recipe's 200-step schedule, stopped where its first checkpoint is
        def on_step_end(self, a, state, control, **kwargs):
            control.should_training_stop = state.global_step >= 50

    collator = objective.PadCollator(tok.pad_token_id, None, 2.0, balanced)
    trainer = weighted_trainer(Trainer)(model=model, args=args, train_dataset=ds, data_collator=collator,
                                        processing_class=tok, callbacks=[Stop()])  # fmt: skip
    start = time.time()
    trainer.train()
    print(f"trained in {time.time() - start:.0f} s", flush=True)
    model.eval()
    probe = [r for r in read_jsonl(DATA) if r.get("kind") == "treatment" and r.get("passages")]
    random.Random(1).shuffle(probe)
    med = lambda r: bool(json.loads(r["messages"][-1]["content"]).get("medications"))  # noqa: E731
    chosen = [r for r in probe if med(r)][:5] + [r for r in probe if not med(r) and not r.get("abstain")][:5]
    for r in chosen:
        sections = decision_margins(model, tok, [r])[0]["sections"]
        print(
            json.dumps({k: [round(p_empty(v["margin"]), 4), int(v["filled"])] for k, v in sections.items()})
        )


if __name__ == "__main__":
    main()
