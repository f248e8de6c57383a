"""What llama.cpp can safely run on this CPU: the extra buffer types chosen from what llama.cpp reports, and a
one-token evaluation of a freshly loaded GGUF in a child process, so a crash becomes one line, not a dead server.

AMX: llama.cpp built with AMX (``AMX_INT8 = 1`` in ``llama_print_system_info()``, which a native build gets on
an Intel CPU with ``amx_int8``) puts quantised weights in its AMX buffer type, and its AMX matrix multiply
segfaults on the first evaluation (llama.cpp issue #20824, closed without a fix). The AMX buffer type is one of
llama.cpp's "extra buffer types", with the weight repacking of the plain CPU kernels; ``use_extra_bufts =
False`` (a model parameter ``Llama()`` does not expose) keeps the weights in plain buffers, and the same files
load and answer. Where the build reports no AMX the extra buffer types stay on: they hold only the repacking,
and docs/llama-cpp.md has the measured speed of both settings.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from ..common.cli import UsageError

ROOT = Path(__file__).resolve().parents[2]
PROBE_TIMEOUT_S = 300.0
ENV = "MEDLORA_LLAMA_EXTRA_BUFTS"  # auto (default), on or off: overrides the choice, for measuring both
# The child loads the model with the parent's settings and evaluates one token; exit 0 means it answered.
_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from llama_cpp import Llama
from medlora.generation.llama_cpu import model_params
with model_params(use_extra_bufts=sys.argv[4] == "1"):
    llm = Llama(sys.argv[2], n_ctx=256, n_threads=int(sys.argv[3]) or None, verbose=False)
llm.eval([llm.token_bos() if llm.token_bos() >= 0 else 0])
llm.close()
"""


def system_info() -> str:
    """llama.cpp's own account of its build: ``CPU : SSE3 = 1 | ... | AMX_INT8 = 1 | REPACK = 1 | ...``."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode("utf-8", "replace")


def has_amx(info: str) -> bool:
    """Whether this llama.cpp build carries the AMX kernels (and so the AMX buffer type)."""
    return re.search(r"\bAMX_INT8 = 1\b", info) is not None


def extra_bufts_for(info: str, setting: str = "auto") -> bool:
    """The ``use_extra_bufts`` setting for a build: off where it reports AMX (the crash), on elsewhere;
    ``setting`` on or off (``$MEDLORA_LLAMA_EXTRA_BUFTS``) overrides it."""
    if setting not in ("auto", "on", "off"):
        raise UsageError(f"{ENV} must be auto, on or off, got {setting!r}")
    return not has_amx(info) if setting == "auto" else setting == "on"


@contextlib.contextmanager
def model_params(**fields) -> Iterator[None]:
    """``Llama()`` with llama_model_params fields it has no argument for: it builds its params from
    ``llama_model_default_params()``, which returns them with ``fields`` set while the block runs."""
    import llama_cpp.llama as module

    lib = module.llama_cpp
    original = lib.llama_model_default_params

    def defaults():
        params = original()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    lib.llama_model_default_params = defaults
    try:
        yield
    finally:
        lib.llama_model_default_params = original


def describe_exit(code: int | None) -> str:
    """``exit code 3``, or ``signal 11 (SIGSEGV)`` for a process killed by a signal (negative return code)."""
    if code is None:
        return "no exit code (still running)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"signal {-code} ({name})"
    return f"exit code {code}"


def probe_command(path: str | Path, threads: int, extra_bufts: bool) -> list[str]:
    return [sys.executable, "-c", _PROBE, str(ROOT), str(path), str(threads), "1" if extra_bufts else "0"]


def probe(path: str | Path, threads: int, extra_bufts: bool, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Evaluate one token of ``path`` in a child process with the settings the server will use; a crash, a
    failure or a hang there is ``UsageError`` (exit 2) naming the file, what happened and the likely fix."""
    try:
        proc = subprocess.run(
            probe_command(path, threads, extra_bufts), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise UsageError(
            f"--gguf {path}: llama.cpp did not evaluate one token within {timeout:.0f} s in a child process"
        ) from None
    if proc.returncode == 0:
        return
    what = describe_exit(proc.returncode)
    if proc.returncode > 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise UsageError(
            f"--gguf {path}: llama.cpp failed evaluating one token in a child process ({what}: {last})"
        )
    info = system_info()
    if has_amx(info) and extra_bufts:
        cause = (
            "likely llama.cpp's AMX matrix multiply (upstream issue #20824); fix: unset "
            f"{ENV} (auto turns the extra buffer types off with AMX) or see docs/llama-cpp.md"
        )
    else:
        cause = (
            "likely a llama.cpp CPU kernel for this quantisation on this CPU; fix: try the F16 file, or "
            "reinstall llama-cpp-python from requirements-llama.txt (docs/llama-cpp.md)"
        )
    raise UsageError(
        f"--gguf {path}: llama.cpp crashed ({what}) evaluating one token in a child process, {cause}"
    )
