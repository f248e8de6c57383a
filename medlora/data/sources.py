"""Where MedQuAD comes from: the GitHub repository's zip (downloaded once, resumable), the Hub dataset, or a
local copy (XML folder or zip, CSV, JSONL); and the focus annotations (``<Synonyms>``) the XML sources carry."""

from __future__ import annotations

import logging
import os
import urllib.request
from pathlib import Path

from ..common.cli import UsageError
from . import medquad

log = logging.getLogger(__name__)

GITHUB_ZIP = "https://github.com/abachaa/MedQuAD/archive/refs/heads/master.zip"
HF_DATASET = "lavita/MedQuAD"


def _download(url: str, dest: Path) -> None:
    """Resumable download: a partial file is continued with a Range request, then renamed into place."""
    part = dest.with_name(dest.name + ".part")
    done = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    try:
        with (
            urllib.request.urlopen(req, timeout=60) as resp,
            open(part, "ab" if resp.status == 206 else "wb") as fh,
        ):
            while chunk := resp.read(1 << 20):
                fh.write(chunk)
    except OSError as e:
        raise UsageError(
            f"cannot download MedQuAD from {url} ({e}): pass a local copy with --medquad PATH "
            "(an XML directory, the GitHub zip, a CSV or JSONL) or use --medquad hf"
        ) from None
    os.replace(part, dest)


def read_medquad(source: str, raw: Path, report: medquad.ReadReport) -> list[medquad.QAPair]:
    """MedQuAD's pairs from ``source``: "github" (the repository zip, downloaded once into ``raw``), "hf" (the
    Hub dataset), or a local XML folder, zip, CSV or JSONL."""
    if source == "github":
        zip_path = raw / "MedQuAD-master.zip"
        if not zip_path.exists():
            raw.mkdir(parents=True, exist_ok=True)
            log.info("downloading %s", GITHUB_ZIP)
            _download(GITHUB_ZIP, zip_path)
        return medquad.read_source(zip_path, report)
    if source == "hf":
        try:
            import datasets

            ds = datasets.load_dataset(HF_DATASET, cache_dir=str(raw / "hf"))
        except Exception as e:  # the datasets library raises many unrelated types when offline
            raise UsageError(
                f"cannot load {HF_DATASET} ({type(e).__name__}): pass a local copy with --medquad "
                "PATH, or set HF_DATASETS_OFFLINE=1 with a populated cache"
            ) from None
        pairs = medquad.read_hf(ds, report)
        if not pairs:
            raise UsageError(f"{HF_DATASET} holds no question-answer pairs with an answer")
        return pairs
    return medquad.read_source(Path(source), report)


def read_annotations(source: str, raw: Path) -> list[medquad.FocusInfo]:
    """Every focus with its MedQuAD ``<Synonyms>`` (answered or not): from the XML sources only."""
    if source == "github":
        return medquad.read_focus_annotations(raw / "MedQuAD-master.zip")
    return [] if source == "hf" else medquad.read_focus_annotations(Path(source))
