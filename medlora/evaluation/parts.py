"""An evaluation in parts that survive an interruption: each finished part (the baselines, a model's multiple
choice, its answers, its treatment rows, a GGUF row) is written to disk the moment it is done, and a rerun of
the same command reuses the parts it finds instead of measuring them again.

The parts live in ``<report stem>.parts.json`` beside the report, with what paired comparisons need (per-item
arrays), under a key of every setting that changes a figure and the data's hash: a rerun with other settings
starts afresh. The file goes once the full report is written.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..common.cli import config_dict
from ..common.files import atomic_write, sha256_files

log = logging.getLogger(__name__)

# Arrays a part keeps as numpy arrays (BLEU's per-item statistics are indexed by bootstrap resamples).
ARRAYS = ("_stats",)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def parts_path(report: str | Path) -> Path:
    report = Path(report)
    return report.with_name(f"{report.stem}.parts.json")


class Parts:
    """Finished parts by name; ``put`` writes them all atomically, so an interruption keeps every finished one."""

    def __init__(self, path: str | Path, key: dict[str, Any], resume: bool = True):
        self.path, self.key = Path(path), key
        self.parts: dict[str, Any] = {}
        self.reused: list[str] = []
        if resume and self.path.is_file():
            try:
                saved = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                log.warning("%s is unreadable (%s): starting afresh", self.path, e)
                return
            if saved.get("key") != key:
                log.info("%s was measured with other settings or data: starting afresh", self.path)
                return
            self.parts = saved.get("parts", {})
            for part in self.parts.values():
                for name in ARRAYS:
                    if isinstance(part, dict) and part.get(name) is not None:
                        part[name] = np.asarray(part[name])
            if self.parts:
                log.info("resuming: %s already measured (%s)", ", ".join(self.parts), self.path)

    def __contains__(self, name: str) -> bool:
        return name in self.parts

    def get(self, name: str) -> Any:
        self.reused.append(name)
        return self.parts[name]

    def put(self, name: str, value: Any) -> Any:
        self.parts[name] = value
        atomic_write(self.path, json.dumps({"key": self.key, "parts": self.parts}, default=_plain) + "\n")
        return value

    def names(self) -> list[str]:
        return list(self.parts)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


# --- the report, partial after each part and complete at the end -------------------------------------------


def model_parts(parts: Parts, name: str) -> dict[str, Any]:
    """A model's finished parts so far, merged (for the partial report)."""
    out: dict[str, Any] = {}
    for part in ("mc", "gen", "treatment"):
        if f"{name}:{part}" in parts:
            out.update({k: v for k, v in parts.parts[f"{name}:{part}"].items() if k != "_row"})
    return out


def resume_key(cfg: Any, data_dir: Path) -> dict[str, Any]:
    """Every setting that changes a figure, and the data: parts measured under another key are not reused."""
    values = {k: v for k, v in config_dict(cfg).items() if k not in ("output", "models_dir", "resume")}
    return {**values, "sha256_train_test": sha256_files([data_dir / "train.jsonl", data_dir / "test.jsonl"])}


def build_report(
    cfg: Any, results: dict, rows: dict, context: dict, complete: bool, parts: Parts | None = None,
    difference: dict | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The report: ``rows`` without per-item scores, ``difference`` fine-tuned minus base (complete runs)."""
    data_dir = context["data_dir"]
    command = "python " + shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    report: dict[str, Any] = {
        "complete": complete,
        **(
            {}
            if complete or parts is None
            else {"finished_parts": parts.names(), "parts_file": str(parts.path)}
        ),
        **{k: {n: v for n, v in r.items() if not n.startswith("_")} for k, r in results.items()},
        "command": command,
        "seed": cfg.seed,
        "data": {
            "dir": str(data_dir),
            "sha256_train_test": sha256_files([data_dir / "train.jsonl", data_dir / "test.jsonl"]),
        },
        "limits": context["limits"],
        "rows": rows,
        "treatment_variants": context["treatment_variants"],
        "precision": context["precision"],
        "mc_answer_tokens": cfg.mc_answer_tokens,
        "bootstrap_resamples": cfg.bootstrap,
        "config": config_dict(cfg),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(context["started"])),
        "seconds": round(time.time() - context["started"], 1),
    }
    if difference is not None:
        report["fine_tuned_minus_base"] = difference
    return report
