from dataclasses import dataclass, field
from typing import Literal

import pytest

from medlora.cli import UsageError, parse_config, run_stage


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
