"""Progress from inside training steps: on a slow CPU one optimiser step of 8 examples takes minutes, and the
Trainer says nothing between steps. ``heartbeat_callback()`` is a ``TrainerCallback`` whose heartbeat thread
(``medlora.common.progress.Heartbeat``) logs, whenever no progress line came for ``HEARTBEAT_S`` seconds, the
step running, its micro-batches, how long it has run, the time so far and an estimate of the time left. Outside
a terminal (where the Trainer's tqdm bar is off) it also logs the Trainer's loss lines as plain log lines.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..common.cli import fmt
from ..common.progress import HEARTBEAT_S, Heartbeat, duration, on_terminal, say

log = logging.getLogger(__name__)


class TrainingProgress:
    """The state the heartbeat reports; the callback below moves it. Separate from transformers for tests."""

    def __init__(self, on_terminal: bool = False):
        self.on_terminal = on_terminal
        self.max_steps, self.step, self.micro, self.accum = 0, 0, 0, 1
        self.start = self.step_start = time.monotonic()
        self.done_times: list[float] = []
        self.phase = "starting"  # starting | step | between | evaluating
        self.eval_batches = 0

    def line(self) -> str | None:
        now = time.monotonic()
        if self.on_terminal and self.phase != "step" and now - self.step_start < HEARTBEAT_S:
            return None  # the tqdm bar moves on a terminal; speak only when a step outlasts the interval
        left = ""
        if self.done_times:
            mean = sum(self.done_times) / len(self.done_times)
            remaining = max(0.0, mean * (self.max_steps - len(self.done_times)) - (now - self.step_start))
            left = f", about {duration(remaining)} left at {mean:.1f} s per step"
        so_far = f"{duration(now - self.start)} so far"
        if self.phase == "step":
            micro = f", micro-batch {self.micro + 1}/{self.accum}" if self.accum > 1 else ""
            return (
                f"training: step {self.step}/{self.max_steps} running for {duration(now - self.step_start)}"
                f"{micro}; {so_far}{left}"
            )
        if self.phase == "evaluating":
            return f"training: evaluating on val after step {self.step}, batch {self.eval_batches}; {so_far}"
        if self.phase == "starting":
            return f"training: preparing the first step of {self.max_steps}; {so_far}"
        return f"training: step {self.step}/{self.max_steps} done (saving or evaluating); {so_far}{left}"


def heartbeat_callback(every: float | None = None) -> Any:
    from transformers import TrainerCallback

    every = HEARTBEAT_S if every is None else every

    class HeartbeatCallback(TrainerCallback):
        def __init__(self) -> None:
            self.state = TrainingProgress(on_terminal())
            self.beat = Heartbeat(self.state.line, every)

        def on_train_begin(self, args, state, control, **kwargs):
            p = self.state
            p.max_steps, p.accum, p.step = (
                state.max_steps,
                args.gradient_accumulation_steps,
                state.global_step,
            )
            p.start = p.step_start = time.monotonic()
            self.beat.__enter__()

        def on_step_begin(self, args, state, control, **kwargs):
            p = self.state
            p.phase, p.step, p.micro, p.step_start = "step", state.global_step + 1, 0, time.monotonic()

        def on_substep_end(self, args, state, control, **kwargs):
            self.state.micro += 1

        def on_step_end(self, args, state, control, **kwargs):
            p = self.state
            p.done_times.append(time.monotonic() - p.step_start)
            p.phase, p.step_start = "between", time.monotonic()

        def on_prediction_step(self, args, state, control, **kwargs):
            p = self.state
            if p.phase != "evaluating":
                p.phase, p.eval_batches = "evaluating", 0
            p.eval_batches += 1

        def on_evaluate(self, args, state, control, **kwargs):
            self.state.phase = "between"

        def on_log(self, args, state, control, logs=None, **kwargs):
            # Outside a terminal the tqdm bar (which printed these) is off: the figures become log lines.
            if not self.state.on_terminal and logs and state.is_world_process_zero:
                shown = {k: fmt(v) for k, v in logs.items() if k != "total_flos"}
                say("training: step %d/%d: %s", state.global_step, state.max_steps, shown)

        def on_train_end(self, args, state, control, **kwargs):
            self.beat.__exit__()

    return HeartbeatCallback()
