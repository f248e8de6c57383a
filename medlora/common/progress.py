"""Progress on every step that takes more than a few seconds, so no stage is silent for minutes.

``progress(items, "what")`` is a tqdm bar on a terminal (as training's) and, where stderr is a file or a pipe
(CI, ``nohup``, ``2> log``), a log line at least every ``LOG_EVERY_S`` seconds instead of a stream of carriage
returns. ``step("what")`` wraps a step that is not a loop (an index build, a model load): a line when it
starts, one every ``LOG_EVERY_S`` seconds while it runs, and one with its time when it ends.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from .cli import is_main_process

log = logging.getLogger("medlora.common.progress")

LOG_EVERY_S = 30.0
T = TypeVar("T")


def _on_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress(
    items: Iterable[T], desc: str, total: int | None = None, unit: str = "it", every: float = LOG_EVERY_S
) -> Iterator[T]:
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if not is_main_process():
        yield from items
        return
    start = time.monotonic()
    if _on_terminal():
        from tqdm.auto import tqdm

        yield from tqdm(items, desc=desc, total=total, unit=f" {unit}", leave=False, dynamic_ncols=True)
        log.info(
            "%s: %s %s in %.1f s", desc, total if total is not None else "all", unit, time.monotonic() - start
        )
        return
    last, n = start, 0
    for item in items:
        yield item
        n += 1
        now = time.monotonic()
        if now - last >= every:
            of = f"/{total}" if total is not None else ""
            log.info("%s: %d%s %s, %.0f s so far", desc, n, of, unit, now - start)
            last = now
    log.info("%s: %d %s in %.1f s", desc, n, unit, time.monotonic() - start)


@contextlib.contextmanager
def step(desc: str, every: float = LOG_EVERY_S) -> Iterator[None]:
    """Log ``desc`` at the start, a line every ``every`` seconds while the body runs, and the time at the end."""
    if not is_main_process():
        yield
        return
    log.info("%s ...", desc)
    start, done = time.monotonic(), threading.Event()

    def tick() -> None:
        while not done.wait(every):
            log.info("%s: still running, %.0f s so far", desc, time.monotonic() - start)

    ticker = threading.Thread(target=tick, name="progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
    log.info("%s: done in %.1f s", desc, time.monotonic() - start)


class Progress:
    """``progress`` for loops that advance by hand (batches of unequal size): a bar on a terminal, elsewhere a
    log line when ``update`` is called ``every`` seconds or more after the last one."""

    def __init__(self, total: int, desc: str, every: float = 20.0):
        self.total, self.desc, self.every, self.done = total, desc, every, 0
        self.start = self.last = time.monotonic()
        self.bar = None
        if _on_terminal():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc)
        else:
            log.info("%s: 0/%d", desc, total)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            log.info("%s: %d/%d (%.0f s)", self.desc, self.done, self.total, now - self.start)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
