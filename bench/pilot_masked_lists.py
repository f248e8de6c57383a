"""Pilot (issue 26): do the always-empty ``"side_effects":[]`` lists push every section's decision to "empty"?

    OMP_NUM_THREADS=1 python bench/pilot_masked_lists.py mask    # their closing "]" left out of the loss
    OMP_NUM_THREADS=1 python bench/pilot_masked_lists.py plain   # the loss before: their "]" supervised

50 steps of 4 on 200 seeded train treatment examples with the recipe's run-2 settings (lr 5e-4 on a 200-step
cosine, class-balanced decisions x2, LoRA on the top 10 layers, fp32), then P(empty) teacher-forced at each
section's decision on 10 train rows (5 whose target fills medications, 5 whose target leaves it empty), the mode and a JSON
object per row: {section: [P(empty), target filled]}. About 17 minutes on one thread. Needs models/smollm2-135m
and data/medquad (download_model.py). docs/real-model.md reports the run.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = "data/medquad/train.jsonl"


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
    from pilot_sample import probe_rows, report, setup, train_pilot  # the training and the probe, shared

    from medlora.common.files import read_jsonl

    mode = "mask" if sys.argv[1:] == ["mask"] else "plain"
    model, tok = setup()
    rows = [r for r in read_jsonl(DATA) if r.get("kind") == "treatment"]
    random.Random(7).shuffle(rows)
    feats, masked = features(tok, rows[:200], mode == "mask")
    print("examples", len(feats), "masked side_effects closings", masked, flush=True)
    train_pilot(model, tok, datasets.Dataset.from_list(feats), Path("/tmp/pilot_masked_lists"))
    report(mode, model, tok, probe_rows())


if __name__ == "__main__":
    main()
