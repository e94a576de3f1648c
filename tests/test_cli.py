import subprocess
import sys
from pathlib import Path

import pytest

from staa_snn import __version__
from staa_snn.cli import main


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"staa-snn {__version__}"


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "staa-snn"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"staa-snn {__version__}"


def test_configs_lists_bundled_rows_without_recipe_bases(capsys):
    assert main(["configs"]) == 0
    names = capsys.readouterr().out.split()
    assert "cifar100_resnet20_t4" in names and "digits" in names and "digits_lif" in names
    assert not any(n.startswith("_") for n in names)


def test_help_names_the_commands(capsys):
    """The usage line and the help list every command, in COMMANDS' order; each has add_arguments and run."""
    from staa_snn.cli import COMMANDS

    names = ["train", "eval", "predict", "stream", "profile", "visualize", "plot", "export", "ablate", "configs"]
    assert [c.NAME for c in COMMANDS] == names
    assert main([]) == 0
    out = capsys.readouterr().out
    usage = " ".join(out.split("\n\n")[0].split())
    assert usage.startswith("usage: staa-snn") and "{" + ",".join(names) + "}" in usage
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    ") and line.split()[0] in names]
    assert listed == names
    for command in COMMANDS:
        assert callable(command.add_arguments) and callable(command.run)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "section.key=value" in capsys.readouterr().out


def test_config_by_path_or_name(tmp_path):
    from staa_snn.cli import resolve_config
    from staa_snn.training import ConfigError

    assert resolve_config(None).name == "digits.yaml" and resolve_config("cifar10_vgg13_t2.yaml").is_file()
    own = tmp_path / "mine.yaml"
    own.write_text("train:\n  epochs: 1\n")
    assert resolve_config(str(own)) == own
    with pytest.raises(ConfigError, match="neither a file nor a bundled config; staa-snn configs lists the"):
        resolve_config("nope")
    with pytest.raises(ConfigError, match="did you mean cifar10_resnet20_t4 or "):
        resolve_config("cifar10_resnet50_t4")


def test_interrupt_is_reported_with_the_resume_hint(monkeypatch, capsys, tmp_path):
    import staa_snn.training as training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", interrupted)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "train.epochs=1"]) == 130  # before the first checkpoint (issue 36)
    assert "interrupted (before the first checkpoint: nothing to resume, the same command starts afresh)" in \
        capsys.readouterr().err
    (tmp_path / "runs" / "digits_vgg_small_staa_t4").mkdir(parents=True)
    (tmp_path / "runs" / "digits_vgg_small_staa_t4" / "last.pt").write_bytes(b"a checkpoint")
    assert main(["train", "train.epochs=1"]) == 130
    assert "interrupted (the last complete checkpoint is kept: continue with --resume auto)" in capsys.readouterr().err
    from staa_snn.analysis import ablate

    monkeypatch.setattr(ablate, "train", interrupted)
    assert main(["ablate", "--grid", "pe_kind", "--epochs", "1", "--seeds", "1", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert "run the same command again to continue" in err and "--resume" not in err


def test_visualize_without_its_extra_says_so_before_loading_anything(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)  # as if not installed
    assert main(["visualize", "--checkpoint", "/nonexistent/best.pt"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == 'staa-snn visualize: error: staa-snn visualize needs Grad-CAM: pip install -e ".[viz]" (in the repository)'


def test_print_config_prints_the_resolved_yaml(capsys):
    import yaml

    assert main(["train", "--config", "cifar100_resnet20_t4_mpbn", "optim.lr=0.05", "--print-config"]) == 0
    tree = yaml.safe_load(capsys.readouterr().out)
    assert tree["optim"]["lr"] == 0.05 and tree["model"]["neuron_preset"] == "mpbn" and tree["data"]["root"] is None


def test_an_unexpected_error_is_one_line_with_the_debug_hint(monkeypatch, capsys):
    import staa_snn.training as training

    def broken(*args, **kwargs):
        raise RuntimeError("something inside\nbroke")

    monkeypatch.setattr(training, "train", broken)
    assert main(["train", "train.epochs=1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "staa-snn train: error: RuntimeError: something inside broke (run with --debug for the traceback)"
    with pytest.raises(RuntimeError, match="something inside"):
        main(["--debug", "train", "train.epochs=1"])


def test_overrides_after_options_and_exponent_floats(capsys):
    import yaml

    argv = ["train", "optim.lr=1e-3", "--print-config", "optim.weight_decay=5E-4", "data.name=imagefolder",
            "data.options.skip_bad_files=true"]
    assert main(argv) == 0
    tree = yaml.safe_load(capsys.readouterr().out)
    assert tree["optim"]["lr"] == 0.001 and tree["optim"]["weight_decay"] == 0.0005  # floats, not strings
    assert tree["data"]["options"] == {"skip_bad_files": True}
    for command in (["train", "--print-config"], ["plot", "runs/x"], ["eval", "--checkpoint", "x.pt"]):
        with pytest.raises(SystemExit):
            main([*command, "--no-such-flag"])
        err = capsys.readouterr().err  # the command's usage, not the top level's
        assert err.startswith(f"usage: staa-snn {command[0]} ")
        assert err.strip().endswith(f"staa-snn {command[0]}: error: unrecognized arguments: --no-such-flag")
    with pytest.raises(SystemExit):  # an option before the command: the top level's usage
        main(["--no-such-flag", "train", "--print-config"])
    assert capsys.readouterr().err.strip().endswith("staa-snn: error: unrecognized arguments: --no-such-flag")


def test_warnings_print_as_one_line(monkeypatch):
    import warnings

    import staa_snn.training as training

    shown = []

    def warns(*args, **kwargs):  # what the command's warnings look like while it runs
        shown.append(warnings.formatwarning("something to know\nabout", UserWarning, "engine.py", 366))
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", warns)
    before = warnings.formatwarning
    assert main(["train", "train.epochs=1"]) == 130
    assert shown == ["staa-snn: warning: something to know about\n"]
    assert warnings.formatwarning is before  # restored for the caller
