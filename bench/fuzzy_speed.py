"""The edit distance: rapidfuzz's optimal string alignment against the pure-Python one the project used before.

    python bench/fuzzy_speed.py                       # focus names of the fixtures (or --names FILE, one a line)
    python bench/fuzzy_speed.py --names names.txt --pairs 20000

Pairs: each name with 1-3 typing slips (``spelling.misspell``) and with another name, seeded. Reported: pairs
whose distances differ (at limits 1, 2, 3, and without a limit), and microseconds per pair.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from medlora.clinical.spelling import edit_distance, misspell  # noqa: E402


def python_osa(a: str, b: str) -> int:
    """The former pure-Python optimal string alignment (``drugs._damerau``), the reference."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--names", default=None, help="names, one a line (default: the fixture foci)")
    ap.add_argument("--pairs", type=int, default=6000, help="pairs compared")
    args = ap.parse_args()
    if args.names:
        path = Path(args.names)
        if not path.is_file():
            print(f"error: {path} not found", file=sys.stderr)
            return 2
        names = [n.strip().lower() for n in path.read_text(encoding="utf-8").splitlines() if n.strip()]
    else:
        from medlora.data import medquad

        fixture = ROOT / "tests" / "fixtures" / "medquad"
        names = sorted({p.focus.lower() for p in medquad.read_source(fixture, medquad.ReadReport())})
    rng = random.Random(0)
    pairs = []
    while len(pairs) < args.pairs:
        w = rng.choice(names)
        pairs.append((w, misspell(w, rng, rng.choice((1, 2, 3)))))
        pairs.append((w, rng.choice(names)))
    differ = sum(
        min(python_osa(a, b), lim + 1) != edit_distance(a, b, lim) for a, b in pairs for lim in (1, 2, 3)
    ) + sum(python_osa(a, b) != edit_distance(a, b) for a, b in pairs)
    t0 = time.perf_counter()
    for a, b in pairs:
        python_osa(a, b)
    t1 = time.perf_counter()
    for a, b in pairs:
        edit_distance(a, b)
    t2 = time.perf_counter()
    out = {
        "pairs": len(pairs),
        "names": len(names),
        "distances_that_differ": differ,
        "python_us_per_pair": round((t1 - t0) / len(pairs) * 1e6, 1),
        "rapidfuzz_us_per_pair": round((t2 - t1) / len(pairs) * 1e6, 2),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
