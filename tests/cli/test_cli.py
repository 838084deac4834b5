"""The command lines: dispatch, shims, no abbreviations, help text, one-message errors."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hepvld
from hepvld.cli import demo, distill, evaluate, generate, train, unfold

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _python_m(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], capture_output=True, text=True, env=ENV, timeout=120
    )


# --- layout -----------------------------------------------------------------------------------


def test_unfold_is_the_function_after_importing_every_module() -> None:
    from hepvld.api import unfold as api_unfold

    names = [m.name for m in pkgutil.walk_packages(hepvld.__path__, "hepvld.")]
    assert "hepvld.cli.unfold" in names and "hepvld.unfold" in names
    for name in names:
        if name in ("hepvld.unfold", "hepvld.__main__"):
            continue
        importlib.import_module(name)
    # The shim refuses to be imported (importing it would rebind hepvld.unfold) ...
    with pytest.raises(ImportError, match=r"hepvld\.cli\.unfold"):
        importlib.import_module("hepvld.unfold")
    # ... so after all of that, hepvld.unfold is still the plain function.
    assert hepvld.unfold is api_unfold
    from hepvld import unfold as imported

    assert imported is api_unfold and callable(imported)


def test_python_m_shims_and_dispatcher_run_the_cli_modules() -> None:
    shim = _python_m("hepvld.unfold", "--help")
    assert shim.returncode == 0, shim.stderr
    assert "usage: python -m hepvld.unfold" in shim.stdout
    assert "(default: 100)" in shim.stdout  # --n-samples shows its default
    # --sampler restricted to the registry (and the distilled students' name)
    assert "{ddim,ddpm,distilled,dpmpp2m,pndm}" in shim.stdout

    top = _python_m("hepvld", "--version")
    assert top.returncode == 0 and top.stdout.strip() == f"hepvld {hepvld.__version__}"

    listed = _python_m("hepvld", "--help")
    assert listed.returncode == 0
    for command in ("generate", "train", "distill", "unfold", "evaluate", "demo"):
        assert f"  {command} " in listed.stdout

    typo = _python_m("hepvld", "trian")
    assert typo.returncode == 2 and "did you mean 'train'" in typo.stderr


@pytest.mark.parametrize(
    "module",
    ["hepvld.train", "hepvld.distill", "hepvld.evaluate", "hepvld.demo", "hepvld.generate"],
)
def test_library_modules_still_run_their_cli(module: str) -> None:
    out = _python_m(module, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: python -m {module}")


def test_console_scripts_point_at_the_cli_modules() -> None:
    import tomllib

    scripts = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"][
        "scripts"
    ]
    assert scripts["hepvld"] == "hepvld.cli:main"
    for command in ("train", "distill", "unfold", "evaluate", "generate", "demo"):
        module, _, func = scripts[f"hepvld-{command}"].partition(":")
        assert module == f"hepvld.cli.{command}" and func == "main"
        assert callable(getattr(importlib.import_module(module), func))


# --- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cli", "argv", "unknown", "suggested"),
    [
        (generate, ["-n", "5", "-o", "x.root", "--worker", "2"], "--worker", "--workers"),
        (train, ["x.root", "--train.max-step", "10"], "--train.max-step", "--train.max-steps"),
        (unfold, ["x.root", "-c", "run", "-o", "y.root", "--sample", "5"], "--sample", "--sampler"),
        (evaluate, ["-c", "run", "-d", "x.root", "-o", "r", "--step", "5"], "--step", "--steps"),
        (demo, ["--train-step", "5"], "--train-step", "--train-steps"),
        (distill, ["run", "--teacher-step", "8"], "--teacher-step", "--teacher-steps"),
    ],
)
def test_abbreviations_are_refused_with_a_suggestion(
    cli, argv: list[str], unknown: str, suggested: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {unknown}" in err
    assert f"did you mean {suggested}" in err


def test_no_flags_do_not_read_as_off_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    for cli in (generate, train):
        with pytest.raises(SystemExit):
            cli.main(["--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: True)" not in text and "(default: False)" not in text
    # generate's --no-* flags and train's --x/--no-x options say what the flag does
    with pytest.raises(SystemExit):
        generate.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "multi-parton interactions are on by default; --no-mpi turns them off" in text
    with pytest.raises(SystemExit):
        train.main(["--help"])
    # argparse wraps lines after hyphens: undo that before matching
    text = re.sub(r"-\s+", "-", " ".join(capsys.readouterr().out.split()))
    assert "(on by default; --no-model.latent-norm turns it off)" in text
    assert "(off by default; --train.compile turns it on)" in text


def test_every_parser_refuses_abbreviations() -> None:
    for cli in (generate, train, distill, unfold, evaluate, demo):
        assert cli.build_parser().allow_abbrev is False


# --- errors: one message naming the input, no traceback, non-zero exit ---------------------


def _fails(cli, argv: list[str], capsys: pytest.CaptureFixture[str], *names: str) -> str:
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    first = captured.err.splitlines()[0]
    assert ": error: " in first
    for name in names:
        assert name in first, (name, captured.err)
    return captured.err


def test_train_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.root"
    _fails(train, [str(missing), "--run-dir", str(tmp_path / "r")], capsys, str(missing))
    bad = tmp_path / "cfg.toml"
    bad.write_text("[train]\nlr = -1\n")
    _fails(train, [str(missing), "--config", str(bad), "--dry-run"], capsys, "lr")
    not_root = tmp_path / "notes.root"
    not_root.write_text("not a ROOT file")
    _fails(train, [str(not_root), "--run-dir", str(tmp_path / "r")], capsys, str(not_root))


def test_train_selection_failure(
    tiny_root_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # no entry read: no event passes the selection, and the message names the file
    err = _fails(
        train,
        [str(tiny_root_file), "--max-events", "0", "--run-dir", str(tmp_path / "r")],
        capsys,
    )
    assert str(tiny_root_file) in err


def test_unfold_errors(
    tiny_root_file: Path, tiny_run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out.root")
    no_run = tmp_path / "no-run"
    _fails(unfold, [str(tiny_root_file), "-c", str(no_run), "-o", out], capsys, str(no_run))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "meta.json").write_text("{not json")
    _fails(unfold, [str(tiny_root_file), "-c", str(broken), "-o", out], capsys, str(broken))
    missing = tmp_path / "missing.root"
    _fails(unfold, [str(missing), "-c", str(tiny_run_dir), "-o", out], capsys, str(missing))
    _fails(
        unfold,
        [str(tiny_root_file), "-c", str(tiny_run_dir), "-o", out, "--tree", "Nope"],
        capsys,
        "Nope",
    )


def test_distill_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    no_run = tmp_path / "no-run"
    _fails(distill, [str(no_run)], capsys, str(no_run))
    _fails(distill, [str(no_run), "--steps", "4", "--teacher-steps", "48"], capsys, "48")


def test_unfold_debug_prints_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_run = tmp_path / "no-run"
    argv = ["x.root", "-c", str(no_run), "-o", str(tmp_path / "o.root"), "--debug"]
    assert unfold.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and str(no_run) in err.splitlines()[-1]


def test_evaluate_errors(
    tiny_root_file: Path, tiny_run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = str(tmp_path / "report")
    no_run = tmp_path / "no-run"
    _fails(
        evaluate, ["-c", str(no_run), "-d", str(tiny_root_file), "-o", report], capsys, str(no_run)
    )
    missing = tmp_path / "missing.root"
    _fails(
        evaluate, ["-c", str(tiny_run_dir), "-d", str(missing), "-o", report], capsys, str(missing)
    )
    _fails(evaluate, ["-d", str(tiny_root_file), "-o", report], capsys, "--checkpoint")


def test_generate_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "g.root")
    _fails(generate, ["-n", "5", "-o", out, "--top-mass", "5", "--no-progress"], capsys, "top_mass")
    _fails(generate, ["-n", "0", "-o", out, "--no-progress"], capsys, "n_events")


def test_demo_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    occupied = tmp_path / "a-file"
    occupied.write_text("")
    _fails(demo, ["--output", str(occupied)], capsys, str(occupied))


def test_a_real_process_prints_one_message(tmp_path: Path) -> None:
    missing = tmp_path / "missing.root"
    done = _python_m("hepvld", "train", str(missing), "--run-dir", str(tmp_path / "r"))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.splitlines()[0]
        == f"hepvld train: error: input file {str(missing)!r} does not exist"
    )


def test_demo_says_how_many_steps_ran_and_why_it_stopped() -> None:
    from hepvld.cli.demo import _training_line

    done = _training_line(1500, 1500, None, reused=False)
    assert done == "1500 of 1500 optimiser steps: completed the step budget"
    cut = _training_line(314, 1500, 420.0, reused=False)
    assert cut.startswith("314 of 1500 optimiser steps: stopped early by the --train-time=420 s")
    assert "NOT the README's result" in cut
    assert "reused" in _training_line(1500, 1500, None, reused=True)


def test_demo_has_no_wall_time_cap_by_default() -> None:
    args = demo.build_parser().parse_args([])
    assert args.train_time is None and args.train_steps == 1500 and args.threads == 1
