"""Tests that enumerate, not sample: every command's options that take a path (found by walking the
argparse parsers, so an option added next month is tried on its first day) are given a model,
a symbolic link and a hard link to it, a FIFO, /dev/zero, /dev/full and a folder; every numeric option is
given nan, inf, -1, 1e308 and 2**64; every keyword of every API function is given values of the
wrong type. Each case runs the real command line in this process up to the moment it would start a
process (a worker, user code: `subprocess.Popen` is replaced by a stop — the one thing mocked,
since a case that gets that far has passed every check made before measuring; the demo, which
trains its models in this process first, stops where it starts building them). Whatever happens,
no case may hang, print a traceback, end in an exception other than speedproof's own errors, or
change the model the links point at; outputs must refuse every one of them."""

from __future__ import annotations

import argparse
import hashlib
import inspect
import math
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.cli import EXIT_USAGE, build_parser, main
from targets.errors import SpeedproofError

CASE_TIMEOUT_S = 30
HOSTILE_PATHS = ("the-model", "symlink-to-model", "hardlink-to-model", "fifo", "/dev/zero", "/dev/full", "folder")
HOSTILE_NUMBERS = ("nan", "inf", "-1", "1e308", str(2**64))
# options whose value is a file or folder speedproof writes: each hostile path must be refused
OUTPUT_OPTIONS = frozenset({"--out", "--plot", "--output", "--junit", "--summary", "--cache", "--tls"})
# MODEL and --candidate are models: a link to one is a model (a user's symlinked release), measured
MODEL_OPTIONS = frozenset({"model", "--candidate"})
# what each option needs beside it to be read at all (set where the command has that option)
CONTEXT = {
    "--tls-ca-file": [("--cluster", "tls://127.0.0.1:9"), ("--scheduler", "tls://127.0.0.1:9")],
    "--tls-cert": [("--cluster", "tls://127.0.0.1:9"), ("--scheduler", "tls://127.0.0.1:9")],
    "--tls-key": [("--cluster", "tls://127.0.0.1:9"), ("--scheduler", "tls://127.0.0.1:9")],
    "--ssh-config": [("--remote", "ssh://nobody@127.0.0.1:9")],
    "--calibration-data": [("--recipe", "int8-static")],
}
# a folder is what these take
FOLDER_OPTIONS = frozenset({"--out", "--cache", "--tls"})


class ReachedMeasurement(BaseException):
    """A case passed every check made before the first process starts."""


class Hung(BaseException):
    """A case ran past CASE_TIMEOUT_S (a FIFO opened for reading, say)."""


def _parsers() -> dict[str, argparse.ArgumentParser]:
    [commands] = [action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)]
    return dict(commands.choices)


def _takes_path(action: argparse.Action) -> bool:
    if action.option_strings == ["--remote"] or action.dest == "help":
        return False
    metavar = str(action.metavar or "")
    return action.type is Path or any(word in metavar for word in ("FILE", "DIR", "PATH", "MODEL", "RECORD"))


def _takes_number(action: argparse.Action) -> bool:
    if not action.option_strings or action.nargs == 0 or action.choices or _takes_path(action):
        return False
    if action.type in (None, str):
        return False
    try:  # a type that reads numbers takes "1" or "0.5"
        return any(_accepts(action, text) for text in ("1", "0.5"))
    except Exception:
        return False


def _accepts(action: argparse.Action, text: str) -> bool:
    try:
        assert action.type is not None and callable(action.type)
        action.type(text)
        return True
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return False


def _name(action: argparse.Action) -> str:
    return action.option_strings[0] if action.option_strings else action.dest


PATH_CASES = [
    (command, _name(action))
    for command, parser in _parsers().items()
    for action in parser._actions
    if _takes_path(action)
]
NUMBER_CASES = [
    (command, _name(action))
    for command, parser in _parsers().items()
    for action in parser._actions
    if _takes_number(action)
]


@pytest.fixture
def world(tmp_path: Path, tiny_conv_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A model, a gate config and a record to run the commands on, the hostile paths, and the stop
    in place of `subprocess.Popen`; the test runs in a folder of its own."""
    model = tmp_path / "model.onnx"
    model.write_bytes(tiny_conv_onnx.read_bytes())
    victim = tmp_path / "victim.onnx"
    victim.write_bytes(tiny_conv_onnx.read_bytes())
    config = tmp_path / "speedproof.toml"
    config.write_text(f'[[check]]\nmodel = "{model}"\nrecipes = ["identity"]\n')
    from harness.records.store import write_record
    from tests.helpers import RENDERABLE_CELL, minimal_record

    record = write_record(minimal_record(RENDERABLE_CELL), tmp_path / "records")
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / "symlink-to-model").symlink_to(victim)
    os.link(victim, hostile / "hardlink-to-model")
    os.mkfifo(hostile / "fifo")
    (hostile / "folder").mkdir()

    def stop(*_args: Any, **_kwargs: Any) -> None:
        raise ReachedMeasurement

    monkeypatch.setattr(subprocess, "Popen", stop)
    monkeypatch.chdir(tmp_path)
    yield {"model": model, "victim": victim, "config": config, "record": record, "hostile": hostile}


def _base(command: str, world: dict[str, Path]) -> list[str]:
    model = str(world["model"])
    fast = ["--min-iterations", "5", "--min-duration-s", "0.02"]
    return {
        "bench": ["bench", model, *fast],
        "variants": ["variants", model, "--recipe", "identity"],
        "verify": ["verify", model, "--recipe", "identity"],
        "compare": ["compare", model, "--sparsity", "0.5"],
        "search": ["search", model, "--budget-s", "5"],
        "sensitivity": ["sensitivity", model],
        "report": ["report", str(world["record"])],
        "gate": ["gate", "--config", str(world["config"])],
        "demo": ["demo"],
        "worker": ["worker", "--scheduler", "tcp://127.0.0.1:9", "--target", "x86-cpu", "--host", "127.0.0.1"],
        "cluster": ["cluster", "--local", "--port", "0", "--targets", "x86-cpu"],
        "targets": ["targets"],
    }[command]


def _with(argv: list[str], option: str, value: str) -> list[str]:
    """`argv` with `option` set to `value` (a positional replaced, an option added or replaced)."""
    if not option.startswith("-"):
        position = 1  # MODEL or RECORD.json: the first positional after the command
        return [*argv[:position], value, *argv[position + 1 :]]
    if option in argv:
        index = argv.index(option)
        return [*argv[: index + 1], value, *argv[index + 2 :]]
    return [*argv, option, value]


def _outcome(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """('refused' | 'reached' | 'ok' | 'failed', stderr) of `speedproof ARGV` in this process."""

    def hung(*_args: Any) -> None:
        raise Hung

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(CASE_TIMEOUT_S)
    try:
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_USAGE
        outcome = {0: "ok", EXIT_USAGE: "refused"}.get(code, "failed")
    except ReachedMeasurement:
        outcome = "reached"
    except Hung:
        pytest.fail(f"speedproof {' '.join(argv)}: still running after {CASE_TIMEOUT_S} s")
    except Exception as error:  # the case's failure: anything but speedproof's own error
        pytest.fail(f"speedproof {' '.join(argv)}: raised {type(error).__name__}: {error}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    err = capsys.readouterr().err
    assert "Traceback" not in err, f"speedproof {' '.join(argv)}:\n{err}"
    return outcome, err


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("command", "option"), PATH_CASES, ids=[f"{c} {o}" for c, o in PATH_CASES])
def test_every_path_option_refuses_links_pipes_devices_and_folders(command, option, world, capsys):
    before = _digest(world["victim"])
    base = _base(command, world)
    known = {name for action in _parsers()[command]._actions for name in action.option_strings}
    for context_option, value in CONTEXT.get(option, []):
        if context_option in known:
            base = _with(base, context_option, value)
    for kind in HOSTILE_PATHS:
        if option in MODEL_OPTIONS and kind.endswith("model"):
            continue  # a model, or a link to one, is a model
        if option in FOLDER_OPTIONS and kind == "folder":
            continue
        path = {"the-model": str(world["victim"])}.get(
            kind, kind if kind.startswith("/") else str(world["hostile"] / kind)
        )
        value = path + ("=cand" if option == "--candidate" else "")
        argv = _with(base, option, value)
        outcome, err = _outcome(argv, capsys)
        assert outcome != "failed", f"speedproof {' '.join(argv)}: exit 1\n{err}"
        if option in OUTPUT_OPTIONS:
            assert outcome == "refused", f"speedproof {' '.join(argv)}: an output was not refused ({outcome})\n{err}"
        if option in OUTPUT_OPTIONS:
            assert path in err or option in err, f"speedproof {' '.join(argv)}: the message names neither\n{err}"
        assert _digest(world["victim"]) == before, f"speedproof {' '.join(argv)} changed the model behind a link"
    assert sorted(path.name for path in world["hostile"].iterdir()) == sorted(
        kind for kind in HOSTILE_PATHS if not kind.startswith("/") and kind != "the-model"
    )  # nothing written beside them
    assert option in FOLDER_OPTIONS or not any((world["hostile"] / "folder").iterdir())


@pytest.mark.parametrize(("command", "option"), NUMBER_CASES, ids=[f"{c} {o}" for c, o in NUMBER_CASES])
def test_every_numeric_option_takes_hostile_numbers_without_a_traceback(command, option, world, capsys, monkeypatch):
    if command == "demo":  # the demo builds (trains) its variants in this process before any starts: stop there
        import harness.verdict.verify

        def stop(*_args: Any, **_kwargs: Any) -> None:
            raise ReachedMeasurement

        monkeypatch.setattr(harness.verdict.verify, "prepare_variants", stop)
    for number in HOSTILE_NUMBERS:
        argv = _with(_base(command, world), option, number)
        outcome, err = _outcome(argv, capsys)
        assert outcome != "failed", f"speedproof {' '.join(argv)}: exit 1\n{err}"


def _api_functions() -> list[tuple[str, str]]:
    import harness.api as api

    cases = []
    for name in ("bench", "build_variants", "verify", "compare", "gate", "search_recipes", "sensitivity"):
        for parameter in inspect.signature(getattr(api, name)).parameters.values():
            if parameter.kind == parameter.KEYWORD_ONLY:
                cases.append((name, parameter.name))
    return cases


WRONG_VALUES = (object(), 1.5, "0.5", [1.5], {"a": object()}, -1, math.nan, [[object()]])


@pytest.mark.parametrize(("function", "keyword"), _api_functions(), ids=[f"{f} {k}" for f, k in _api_functions()])
def test_every_api_keyword_takes_wrong_types_as_a_usage_error(function, keyword, world, capsys):
    import harness.api as api

    first = world["config"] if function == "gate" else world["model"]
    for value in WRONG_VALUES:
        try:
            getattr(api, function)(first, **{keyword: value})
        except (SpeedproofError, ReachedMeasurement):
            pass
        except Exception as error:
            pytest.fail(f"api.{function}({keyword}={value!r}): {type(error).__name__}: {error}")
    assert "Traceback" not in capsys.readouterr().err


def test_the_enumeration_finds_the_options_it_must():
    """A guard on the walker itself: it must see the path and number options known today."""
    paths, numbers = set(PATH_CASES), set(NUMBER_CASES)
    assert {("compare", "--plot"), ("report", "--output"), ("gate", "--junit"), ("gate", "--summary")} <= paths
    assert {("verify", "--policy"), ("gate", "--baseline"), ("bench", "--data"), ("cluster", "--tls")} <= paths
    assert {("verify", "model"), ("report", "record"), ("search", "--resume"), ("worker", "--cache")} <= paths
    assert {("verify", "--max-pair-duration-s"), ("search", "--seed"), ("bench", "--threads")} <= numbers
