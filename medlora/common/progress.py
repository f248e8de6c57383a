"""Progress on every step that takes more than a few seconds, so no stage is silent for minutes.

``progress(items, "what")`` is a tqdm bar on a terminal (as training's) and, where stderr is a file or a pipe
(CI, ``nohup``, ``2> log``), a log line at least every ``LOG_EVERY_S`` seconds instead of a stream of carriage
returns. ``step("what")`` wraps a step that is not a loop (an index build, a model load): a line when it
starts, one every ``LOG_EVERY_S`` seconds while it runs, and one with its time when it ends.
``Heartbeat(status)`` speaks from a thread while one long call runs (a training step, a ``generate()``): the
line ``status()`` returns whenever no progress line was logged for ``HEARTBEAT_S`` seconds.
``TokenProgress`` is such a heartbeat for generation: a logits processor counting the tokens decoded so far.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from .cli import is_main_process

log = logging.getLogger("medlora.common.progress")

LOG_EVERY_S = 30.0
# Below LOG_EVERY_S: on a loaded box a thread wakes late, and the promise is no silence over 30 s.
HEARTBEAT_S = 25.0
T = TypeVar("T")
_now = time.monotonic  # bound at import: tests that fake time.monotonic for a bar leave heartbeats alone
_last_line = [_now()]  # when a progress line was last logged, by any bar, step or heartbeat


def say(msg: str, *args: object) -> None:
    """Log a progress line (and reset every heartbeat's silence clock)."""
    log.info(msg, *args)
    _last_line[0] = _now()


def _on_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def on_terminal() -> bool:
    """Whether stderr is a terminal: bars there, plain log lines (never carriage returns) elsewhere."""
    return _on_terminal()


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
            say("%s: %d%s %s, %.0f s so far", desc, n, of, unit, now - start)
            last = now
    say("%s: %d %s in %.1f s", desc, n, unit, time.monotonic() - start)


class Heartbeat:
    """While the ``with`` body runs, a thread logs ``status()`` (unless it returns None) whenever no progress
    line was logged for ``every`` seconds: progress from inside one long call that reports nothing itself."""

    def __init__(self, status: Callable[[], str | None], every: float = HEARTBEAT_S, poll: float = 1.0):
        self.status, self.every, self.poll = status, every, min(poll, every)
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self.done.wait(self.poll):
            if _now() - _last_line[0] >= self.every and (line := self.status()):
                say("%s", line)

    def __enter__(self) -> Heartbeat:
        if is_main_process():
            self.thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join()


@contextlib.contextmanager
def step(desc: str, every: float = HEARTBEAT_S) -> Iterator[None]:
    """Log ``desc`` at the start, a line whenever ``every`` seconds pass without one while the body runs, and
    the time at the end (or, when it raised or was interrupted, how long it ran)."""
    if not is_main_process():
        yield
        return
    say("%s ...", desc)
    start = time.monotonic()
    with Heartbeat(
        lambda: f"{desc}: still running, {time.monotonic() - start:.0f} s so far", every, every / 5
    ):
        try:
            yield
        except BaseException:
            say("%s: stopped after %.1f s", desc, time.monotonic() - start)
            raise
    say("%s: done in %.1f s", desc, time.monotonic() - start)


def duration(seconds: float) -> str:
    """``45 s``, ``3 min 05 s``, ``2 h 10 min``: a heartbeat's figures must move between its lines."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class TokenProgress(Heartbeat):
    """A logits processor (``(input_ids, scores) -> scores``, placed in ``generate``'s list) that counts decoding
    steps, and a heartbeat saying tokens so far, the rate, and the time left if no sequence stops early."""

    def __init__(self, desc: str, batch: int, max_new_tokens: int, every: float = HEARTBEAT_S):
        super().__init__(self.line, every)
        self.desc, self.batch, self.max_new_tokens = desc, batch, max_new_tokens
        self.steps, self.start, self.first = 0, _now(), None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.steps += 1
        if self.first is None:
            self.first = _now()  # the prompt has been read: the rate counts decoding only
        return scores

    def line(self) -> str:
        now = _now()
        rows = f"{self.batch} sequence{'s' if self.batch != 1 else ''}"
        if self.first is None:
            return f"{self.desc}: reading the prompts of {rows}, {now - self.start:.0f} s so far"
        rate = (self.steps - 1) / (now - self.first) if self.steps > 1 and now > self.first else 0.0
        left = (self.max_new_tokens - self.steps) / rate if rate else None
        eta = f", at most {duration(left)} left" if left is not None else ""
        return (
            f"{self.desc}: {self.steps}/{self.max_new_tokens} tokens of {rows}, {rate:.2f} tokens/s, "
            f"{duration(now - self.start)} so far{eta}"
        )


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
            say("%s: 0/%d", desc, total)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            say("%s: %d/%d (%.0f s)", self.desc, self.done, self.total, now - self.start)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
