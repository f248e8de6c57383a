"""One configuration mechanism for every stage: a dataclass is the config.

Each field carries its default and its help text (``field(metadata={"help": ...})``); ``parse_config`` turns
the dataclass into argparse flags (``snake_case`` becomes ``--kebab-case``), optionally reads a YAML file given
with ``--config`` (flags override it), and calls the dataclass's ``validate()`` before any work is done.
``run_stage`` wraps a stage's ``main(config)`` so bad input ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import types
import typing
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

log = logging.getLogger(__name__)

C = TypeVar("C")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input or configuration: reported as one line, exit code 2, nothing written."""


def is_main_process() -> bool:
    # accelerate/torchrun set RANK; logging only from rank 0 keeps multi-GPU output readable.
    return int(os.environ.get("RANK", "0")) == 0


# Third-party chatter that tells the user nothing; --verbose (or MEDLORA_VERBOSE=1) brings it back.
QUIET_LOGGERS = ("absl",)  # rouge-score logs "Using default tokenizer." once per scorer
QUIET_WARNINGS = (
    # peft reads transformers' deprecated alias when it wraps a model; nothing the user can change.
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
    # datasets sorts with a pyarrow option pyarrow 25 deprecated; the sort is right either way.
    (FutureWarning, r"Specifying null_placement in SortOptions is deprecated"),
)


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    if not is_main_process():
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    # The level goes on the handler too: a library that sets its own logger to DEBUG on import (bm25s does)
    # would otherwise print debug lines through it.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    for category, message in QUIET_WARNINGS:
        warnings.filterwarnings("default" if verbose else "ignore", message=message, category=category)
    if not getattr(sys.stderr, "isatty", lambda: False)():
        quiet_bars()


def quiet_bars() -> None:
    """No tqdm bar where stderr is a file or a pipe: carriage returns and cursor codes make a log unreadable.
    medlora's own loops log lines there instead (medlora/common/progress.py); libraries' bars (weight loading,
    dataset maps, downloads) are switched off, whether or not the library is imported yet."""
    os.environ["TQDM_DISABLE"] = "1"  # read by tqdm when it is first imported
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read by huggingface_hub, transformers and datasets
    if "tqdm" in sys.modules:  # imported already: its defaults were bound then
        import functools

        import tqdm.std

        init = tqdm.std.tqdm.__init__
        if not getattr(init, "_medlora_quiet", False):
            quiet = functools.partialmethod(init, disable=True)
            quiet._medlora_quiet = True  # type: ignore[attr-defined]
            tqdm.std.tqdm.__init__ = quiet  # type: ignore[method-assign]
    for module, call in (("huggingface_hub.utils", "disable_progress_bars"),
                         ("transformers.utils.logging", "disable_progress_bar"),
                         ("datasets", "disable_progress_bars")):  # fmt: skip
        if module in sys.modules:
            getattr(sys.modules[module], call)()


def fmt(value: Any, digits: int = 3) -> Any:
    """Floats to ``digits`` significant figures, inside dicts and lists too: for log lines, not for files."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: fmt(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [fmt(v, digits) for v in value]
    return value


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if (origin is typing.Union or origin is types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def _add_field(parser: argparse.ArgumentParser, f: dataclasses.Field, tp: Any) -> None:
    flag = "--" + f.name.replace("_", "-")
    help_text = f.metadata.get("help", "")
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    tp, _ = _unwrap_optional(tp)
    origin = typing.get_origin(tp)
    # argparse.SUPPRESS keeps "not given" distinguishable from "given the default", so YAML values survive.
    kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
    if tp is bool:
        parser.add_argument(
            flag, action=argparse.BooleanOptionalAction, help=f"{help_text} (default: {default})", **kwargs
        )
        return
    if origin is typing.Literal:
        kwargs["choices"] = list(typing.get_args(tp))
        kwargs["type"] = type(kwargs["choices"][0])
    elif origin in (list, tuple):
        kwargs["nargs"] = "+"
        kwargs["type"] = typing.get_args(tp)[0]
    elif tp in (int, float, str):
        kwargs["type"] = tp
    else:
        raise TypeError(f"unsupported config field type for {f.name}: {tp}")
    shown = "none" if default is None else default
    parser.add_argument(
        flag,
        help=f"{help_text} (default: {shown})",
        metavar=f.name.upper() if "choices" not in kwargs else None,
        **kwargs,
    )


def build_parser(cls: type, description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument(
        "--config", metavar="FILE.yaml", help="read settings from a YAML file; flags override it"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="debug logging, and the third-party warnings hidden by default (same as MEDLORA_VERBOSE=1)",
    )
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.init:
            _add_field(parser, f, hints[f.name])
    return parser


def _coerce(cls: type, values: dict[str, Any], origin: str) -> dict[str, Any]:
    """Check YAML values against the dataclass's field types: a typo'd key or a wrong type is an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in names:
            raise UsageError(f"{origin}: unknown setting {key!r}")
        tp, optional = _unwrap_optional(hints[name])
        if value is None and optional:
            out[name] = None
            continue
        try:
            if tp is bool:
                if not isinstance(value, bool):
                    raise TypeError
            elif typing.get_origin(tp) is typing.Literal:
                if value not in typing.get_args(tp):
                    raise UsageError(
                        f"{origin}: {key} must be one of {list(typing.get_args(tp))}, got {value!r}"
                    )
            elif typing.get_origin(tp) in (list, tuple):
                inner = typing.get_args(tp)[0]
                value = [inner(v) for v in (value if isinstance(value, list) else [value])]
            elif tp is float:
                value = float(value)
            elif tp is int:
                if isinstance(value, bool) or float(value) != int(value):
                    raise TypeError
                value = int(value)
            elif tp is str:
                value = str(value)
        except (TypeError, ValueError):
            raise UsageError(f"{origin}: {key} has the wrong type ({value!r})") from None
        out[name] = value
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"config file {p} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {p} must hold a mapping of settings")
    return data


def parse_config(cls: type[C], argv: Sequence[str] | None = None, description: str | None = None) -> C:
    """Defaults < YAML file (--config) < flags; then ``validate()``."""
    parser = build_parser(cls, description)
    ns = vars(parser.parse_args(argv))
    config_file = ns.pop("config", None)
    ns.pop("verbose", None)  # read by run_stage before parsing, so the parse itself logs at the right level
    values: dict[str, Any] = {}
    if config_file:
        values.update(_coerce(cls, load_yaml(config_file), str(config_file)))
    values.update(ns)
    cfg = cls(**values)
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        validate()
    return cfg


def config_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def log_config(cfg: Any) -> None:
    """One short line after validation: the settings that differ from the defaults, less those the run does not
    use (a config's ``unused()`` names them: the adapter in --base-only mode, ...). The full config is in each
    stage's outputs (run_config.json, the report's "config")."""
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())  # type: ignore[misc]
                for f in dataclasses.fields(cfg) if f.init}  # fmt: skip
    unused = set(getattr(cfg, "unused", lambda: ())())
    values = config_dict(cfg)
    changed = {k: v for k, v in sorted(values.items()) if k not in unused and v != defaults.get(k)}
    shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in changed.items()) or "all defaults"
    log.info("settings: %s", shown)


def run_stage(
    main: Callable[[C], Any], cls: type[C], argv: Sequence[str] | None = None, description: str | None = None
) -> int:
    """Parse, validate, log the resolved config once, run ``main``; map failures to exit codes."""
    args = sys.argv[1:] if argv is None else list(argv)
    setup_logging(verbose=os.environ.get("MEDLORA_VERBOSE") == "1" or "--verbose" in args)
    try:
        cfg = parse_config(cls, argv, description)
        log_config(cfg)
        main(cfg)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return EXIT_OK
