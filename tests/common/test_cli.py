import logging
import warnings
from dataclasses import dataclass, field
from typing import Literal

import pytest

from medlora.common.cli import UsageError, fmt, parse_config, run_stage, setup_logging


@dataclass
class Cfg:
    lr: float = field(default=2e-4, metadata={"help": "learning rate"})
    epochs: int = field(default=3, metadata={"help": "epochs"})
    name: str | None = field(default=None, metadata={"help": "a name"})
    fast: bool = field(default=False, metadata={"help": "go fast"})
    precision: Literal["auto", "fp32"] = field(default="auto", metadata={"help": "precision"})
    modules: list[str] = field(default_factory=lambda: ["q", "v"], metadata={"help": "modules"})

    def validate(self):
        if self.lr <= 0:
            raise UsageError("--lr must be > 0")


def test_defaults_flags_and_types():
    assert parse_config(Cfg, []) == Cfg()
    cfg = parse_config(Cfg, ["--lr", "0.1", "--fast", "--modules", "a", "b", "--precision", "fp32"])
    assert (cfg.lr, cfg.fast, cfg.modules, cfg.precision) == (0.1, True, ["a", "b"], "fp32")


def test_yaml_then_flags_override(tmp_path):
    y = tmp_path / "run.yaml"
    y.write_text("lr: 0.01\nepochs: 5\nfast: true\nmodules: [k]\n")
    cfg = parse_config(Cfg, ["--config", str(y), "--epochs", "7"])
    assert (cfg.lr, cfg.epochs, cfg.fast, cfg.modules) == (0.01, 7, True, ["k"])
    assert parse_config(Cfg, ["--config", str(y), "--no-fast"]).fast is False


@pytest.mark.parametrize(
    "text, message",
    [
        ("lrr: 1\n", "unknown setting 'lrr'"),
        ("epochs: 1.5\n", "wrong type"),
        ("precision: fp8\n", "must be one of"),
        ("- 1\n", "mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_yaml_is_a_usage_error(tmp_path, text, message):
    y = tmp_path / "bad.yaml"
    y.write_text(text)
    with pytest.raises(UsageError, match=message):
        parse_config(Cfg, ["--config", str(y)])


def test_validate_runs_before_main(capsys):
    called = []
    assert run_stage(called.append, Cfg, ["--lr", "-1"]) == 2
    assert called == [] and capsys.readouterr().err.strip() == "error: --lr must be > 0"
    assert run_stage(called.append, Cfg, ["--lr", "1"]) == 0 and called[0].lr == 1.0


def test_usage_error_in_main_is_one_line_exit_2(capsys):
    def main(cfg):
        raise UsageError("data not found: run `python download_model.py` first")

    assert run_stage(main, Cfg, []) == 2
    err = capsys.readouterr().err
    # logging also writes to stderr; the error itself is one line, the last
    assert err.splitlines()[-1] == "error: data not found: run `python download_model.py` first"
    assert "Traceback" not in err


def test_help_documents_every_field(capsys):
    with pytest.raises(SystemExit) as e:
        parse_config(Cfg, ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--lr", "--epochs", "--name", "--fast", "--precision", "--modules", "--config"):
        assert flag in out


def _chatty_stage(cfg):
    logging.getLogger("bm25s").setLevel(logging.DEBUG)  # what bm25s does to its logger on import
    logging.getLogger("bm25s").debug("bm25s debug line")
    logging.getLogger("absl").info("Using default tokenizer.")
    logging.getLogger("medlora.stage").info("the stage's own line")


@pytest.mark.parametrize("verbose", [False, True])
def test_quiet_by_default_and_verbose_brings_the_detail_back(capsys, verbose):
    assert run_stage(_chatty_stage, Cfg, ["--verbose"] if verbose else []) == 0
    err = capsys.readouterr().err
    assert "the stage's own line" in err
    assert ("bm25s debug line" in err) is verbose and ("Using default tokenizer" in err) is verbose


@pytest.mark.parametrize("verbose", [False, True])
def test_the_peft_deprecation_warning_is_hidden_unless_verbose(verbose):
    with warnings.catch_warnings(record=True) as seen:
        setup_logging(verbose)
        warnings.warn(
            "`is_gradient_checkpointing` is deprecated and will be removed in v6.",
            FutureWarning,
            stacklevel=1,
        )
        warnings.warn(
            "Specifying null_placement in SortOptions is deprecated as of 25.0.0.",
            FutureWarning,
            stacklevel=1,
        )
        warnings.warn("another FutureWarning stays visible", FutureWarning, stacklevel=1)
    shown = [str(w.message) for w in seen]
    assert "another FutureWarning stays visible" in shown
    assert any("is_gradient_checkpointing" in m for m in shown) is verbose
    assert any("null_placement" in m for m in shown) is verbose


def test_metrics_in_log_lines_have_three_significant_figures():
    got = fmt({"accuracy": 0.27345678912345, "ci": [0.2123456789, 0.33333333333], "n": 982, "bleu": 12.3456})
    assert got == {"accuracy": 0.273, "ci": [0.212, 0.333], "n": 982, "bleu": 12.3}
    assert fmt(None) is None and fmt("text") == "text"


def test_the_settings_line_names_only_what_differs_and_is_used(capsys):
    """After validation, one short line: changed settings, less those the run does not read."""
    import inference

    cfg = inference.InferenceConfig(patient="-", base_model="models/smollm2-135m", base_only=True,
                                    adapter="models/elsewhere", format="text")  # fmt: skip
    import logging

    from medlora.common import cli as cli_module

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    cli_module.log.addHandler(handler)
    try:
        cli_module.log_config(cfg)
    finally:
        cli_module.log.removeHandler(handler)
    (line,) = [r.getMessage() for r in records]
    assert line.startswith("settings: ") and '"models/smollm2-135m"' in line and "base_only=true" in line
    assert "adapter" not in line and "host" not in line and "max_queue" not in line  # unused or default
