"""How often the degenerate-text rule (medlora/grounding/publishable.py) flags text a person wrote: every MedQuAD answer
sentence, and the answers packed into item-sized pieces (up to 600 characters, the schema's longest item).

    python bench/degenerate_false_positives.py --medquad ../shared/data/medquad
    python bench/degenerate_false_positives.py --medquad ../shared/data/medquad --examples 5

MedQuAD is written by people, so whatever the rule flags in it is a false positive, or a defect of the source
(repeated headings and list items). Prints one JSON object: counts per reason, and a few examples of each.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medlora.common.text import split_sentences  # noqa: E402
from medlora.data.medquad import ReadReport, read_source  # noqa: E402
from medlora.grounding.publishable import degenerate  # noqa: E402

MAX_ITEM_CHARS = 600  # the schema's Text limit


def pieces(answer: str) -> list[str]:
    """The answer's sentences packed greedily into pieces of at most ``MAX_ITEM_CHARS``."""
    out, cur = [], ""
    for s in split_sentences(answer):
        if len(cur) + len(s) + 1 <= MAX_ITEM_CHARS:
            cur = f"{cur} {s}".strip()
            continue
        if cur:
            out.append(cur)
        cur = s if len(s) <= MAX_ITEM_CHARS else ""
    return [*out, cur] if cur else out


def rates(texts: set[str], n_examples: int) -> dict:
    counts: Counter[str] = Counter()
    examples: dict[str, list[str]] = defaultdict(list)
    for t in sorted(texts):
        if why := degenerate(t):
            counts[why] += 1
            if len(examples[why]) < n_examples:
                examples[why].append(t[:200])
    flagged = sum(counts.values())
    return {"n": len(texts), "flagged": flagged, "rate": round(flagged / max(1, len(texts)), 5),
            "by_reason": dict(counts), "examples": dict(examples)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--medquad", required=True, help="MedQuAD as download_model.py reads it (XML dir, zip, ...)"
    )
    ap.add_argument("--examples", type=int, default=3, help="examples printed per reason")
    args = ap.parse_args()
    pairs = read_source(Path(args.medquad), ReadReport())
    sentences = {s for p in pairs for s in split_sentences(p.answer) if len(s) <= MAX_ITEM_CHARS}
    chunks = {c for p in pairs for c in pieces(p.answer)}
    report = {
        "pairs": len(pairs),
        "sentences": rates(sentences, args.examples),
        "pieces": rates(chunks, args.examples),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
