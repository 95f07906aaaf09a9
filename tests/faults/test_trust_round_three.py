"""The third hostile pass, cause by cause (the numbered causes of the issue; the path and number
options are enumerated in test_every_path_option.py): .npz headers that lie about their size,
user code that escapes its session, floods its output, rewrites its result or writes beside the
records, study databases that are not the search's own, the fleet's TLS folder, misleading
messages, and a Ctrl-C that lands while Python imports the command line."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.faults.conftest import usage_error


def _input_name(model: Path) -> str:
    import onnx

    return onnx.load(str(model)).graph.input[0].name


def _npz_with_header(path: Path, name: str, shape: str, dtype: str = "<f4") -> Path:
    """An .npz whose one member declares `shape` (a Python tuple's text) and holds 16 bytes."""
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 16
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}.npy", member)
    return path


@pytest.mark.parametrize(
    ("shape", "said"),
    [
        ("(1099511627776, 3, 0, 0)", "holds no values"),  # 2**40 samples of nothing: 3 GB of feed dicts before
        ("(-100000, 3, 16, 16)", "a dim below 0"),  # loaded 1.2 GB under a 64 MiB cap before
        ("(10**30, 3, 16, 16)".replace("10**30", str(10**30)), "more than the"),  # OverflowError before
    ],
)
def test_npz_headers_are_checked_before_anything_is_read(tiny_conv_onnx, tmp_path, capsys, shape, said):
    data = _npz_with_header(tmp_path / "lying.npz", _input_name(tiny_conv_onnx), shape)
    args = ["verify", str(tiny_conv_onnx), "--recipes", "identity", "--data", str(data), "--out", str(tmp_path / "o")]
    err = usage_error(args, capsys)
    assert said in err and "lying.npz" in err


def test_dates_in_data_are_refused_with_the_dtype_named(tiny_conv_onnx, tmp_path, capsys):
    data = tmp_path / "dates.npz"
    np.savez(data, **{_input_name(tiny_conv_onnx): np.zeros((8, 3, 16, 16), "datetime64[s]")})
    args = ["verify", str(tiny_conv_onnx), "--recipes", "identity", "--data", str(data), "--out", str(tmp_path / "o")]
    assert "has dtype datetime64[s]" in usage_error(args, capsys)


USER_FUNCTIONS = """
import os, subprocess, sys, time
import numpy as np

NAME = {name!r}

def escapes():
    # a child that leaves the process group and the session: it outlived the run before
    subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); time.sleep(3600)", {tag!r}])
    for _ in range(8):
        yield {{NAME: np.zeros((1, 3, 16, 16), np.float32)}}

def floods():
    sys.stderr.write("x" * 1000 + "\\n") if False else None
    for _ in range(20_000):
        sys.stdout.write("y" * 999 + "\\n")  # 20 MB of output
    raise RuntimeError("after a flood")

def dates_late():
    for index in range(8):
        value = np.zeros((1, 3, 16, 16), np.float32) if index < 5 else np.zeros((1, 3, 16, 16), "datetime64[s]")
        yield {{NAME: value}}

def writes_beside(outputs, labels):
    with open("metric-was-here.json", "w") as handle:  # relative: lands in its scratch folder
        handle.write("{{}}")
    return 0.5
"""


@pytest.fixture
def user_module(tmp_path: Path, tiny_conv_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    tag = f"speedproof-escapee-{tmp_path.name}"
    (tmp_path / "hostile_user.py").write_text(USER_FUNCTIONS.format(name=_input_name(tiny_conv_onnx), tag=tag))
    monkeypatch.chdir(tmp_path)
    return tag


def _escapees(tag: str) -> list[psutil.Process]:
    return [process for process in psutil.process_iter(["cmdline"]) if tag in (process.info["cmdline"] or [])]


def test_a_child_that_leaves_the_session_is_stopped_with_the_data_function(tiny_conv_onnx, tmp_path, user_module):
    from harness.models.user_functions import collect_function_data
    from targets.inputs import ModelInput

    inputs = [ModelInput(_input_name(tiny_conv_onnx), "float32", ("N", 3, 16, 16), batch_axis=0)]
    try:
        arrays = collect_function_data("hostile_user:escapes", inputs, "--data", tmp_path / "work")
        assert arrays[_input_name(tiny_conv_onnx)].shape[0] == 8
        deadline = time.monotonic() + 10
        while _escapees(user_module) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _escapees(user_module)
    finally:
        for process in _escapees(user_module):
            process.kill()


def test_a_flood_of_output_is_read_by_its_tail_only(tiny_conv_onnx, tmp_path, user_module, capsys):
    args = ["verify", str(tiny_conv_onnx), "--recipes", "identity", "--data", "hostile_user:floods"]
    err = usage_error([*args, "--out", str(tmp_path / "out")], capsys)
    assert "after a flood" in err and len(err) < 8_000  # 8 lines of its tail, each cut


def test_data_of_another_dtype_after_good_batches_is_a_message(tiny_conv_onnx, tmp_path, user_module, capsys):
    args = ["verify", str(tiny_conv_onnx), "--recipes", "identity", "--data", "hostile_user:dates_late"]
    assert "datetime64" in usage_error([*args, "--out", str(tmp_path / "out")], capsys)


def test_a_rewritten_result_is_checked_like_any_input(monkeypatch, tmp_path):
    """The process that ran user code writes its own result; a rewrite to 3e8 calls was a MemoryError."""
    import harness.models.contained as contained
    from harness.models.user_functions import _result_calls

    stored = {"call0_0": np.zeros(1)}
    with pytest.raises(Exception, match="does not match the data it wrote"):
        _result_calls({"calls": 300_000_000, "keys": [["call0_0", "x"]]}, stored, "--data 'm:f'")
    with pytest.raises(Exception, match="does not match"):
        _result_calls({"calls": 1, "keys": [["call5_0", "x"]]}, stored, "--data 'm:f'")
    assert _result_calls({"calls": 1, "keys": [["call0_0", "x"]]}, stored, "--data 'm:f'") == 1
    assert contained  # the result itself is read through the one way in (capped, plain file only)


def test_a_metric_function_writes_into_a_scratch_folder_not_beside_the_records(tmp_path, user_module):
    from harness.models.user_functions import task_metric

    score = task_metric("hostile_user:writes_beside", [[np.zeros((1, 4))]], ["out"], None, tmp_path / "work")
    assert score == 0.5 and not (tmp_path / "metric-was-here.json").exists()


def _search_folder(tmp_path: Path, tiny_conv_onnx: Path) -> Path:
    from harness.search.job import SETTINGS_FILE, STUDY_FILE, SearchRequest

    folder = tmp_path / "search-1"
    folder.mkdir()
    settings = SearchRequest(model=str(tiny_conv_onnx), out_dir=tmp_path).settings()
    (folder / SETTINGS_FILE).write_text(json.dumps(settings))
    import sqlite3

    with sqlite3.connect(folder / STUDY_FILE) as connection:  # a database file (an empty one has no header)
        connection.execute("CREATE TABLE studies (study_id INTEGER)")
    return folder


@pytest.mark.parametrize("damage", ["not-sqlite", "linked", "trigger", "session-file", "seed"])
def test_a_study_that_is_not_the_searchs_own_is_refused(tiny_conv_onnx, tmp_path, capsys, damage):
    import sqlite3

    folder = _search_folder(tmp_path, tiny_conv_onnx)
    study = folder / "study.db"
    other = tmp_path / "lab.sqlite"
    sqlite3.connect(other).close()
    said = {
        "not-sqlite": "not an SQLite database",
        "linked": "is a link to another file",
        "trigger": "has triggers (drop_outcomes)",
        "session-file": "session-2 is there but is not the folder of a session",
        "seed": "its search.json has seed",
    }[damage]
    if damage == "not-sqlite":
        study.write_text("not a database")
    elif damage == "linked":
        study.unlink()
        study.symlink_to(other)
    elif damage == "trigger":
        with sqlite3.connect(study) as connection:
            connection.execute("CREATE TABLE t (x)")
            connection.execute("CREATE TRIGGER drop_outcomes BEFORE INSERT ON t BEGIN SELECT RAISE(ABORT, 'no'); END")
    elif damage == "session-file":
        (folder / "session-2").write_text("")
    else:
        settings = json.loads((folder / "search.json").read_text())
        (folder / "search.json").write_text(json.dumps({**settings, "seed": 2**40}))
    err = usage_error(["search", "--resume", str(folder), "--budget-s", "5"], capsys)
    assert said in err
    if damage == "linked":
        with sqlite3.connect(other) as connection:  # optuna's tables were added to the lab's file before
            assert connection.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


@pytest.mark.parametrize("seed", ["-1", str(2**32), "1e20"])
def test_a_seed_the_sampler_cannot_take_is_a_usage_error(tiny_conv_onnx, capsys, seed):
    err = usage_error(["search", str(tiny_conv_onnx), "--seed", seed], capsys)
    assert "a seed is a whole number from 0 to" in err


def test_the_tls_folder_never_loses_what_is_in_it(tmp_path):
    from targets.errors import ConfigurationError
    from targets.runners.fleet_certificates import ensure_certificates

    lab = ensure_certificates(tmp_path / "lab").folder
    # a lab's own CA and nothing else: a fleet certificate is signed with it; the CA is kept
    ca_only = tmp_path / "ca-only"
    ca_only.mkdir()
    for name in ("ca.pem", "ca-key.pem"):
        (ca_only / name).write_bytes((lab / name).read_bytes())
        (ca_only / name).chmod(0o600)
    made = ensure_certificates(ca_only)
    assert (ca_only / "ca-key.pem").read_bytes() == (lab / "ca-key.pem").read_bytes()
    from cryptography import x509

    leaf = x509.load_pem_x509_certificate(made.cert.read_bytes())
    assert leaf.issuer == x509.load_pem_x509_certificate((lab / "ca.pem").read_bytes()).subject
    assert oct(made.key.stat().st_mode & 0o777) == "0o600"
    # a key that is a link: its target is never replaced by a new key
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "fleet-key.pem").symlink_to(victim)
    with pytest.raises(ConfigurationError):
        ensure_certificates(linked)
    assert victim.read_text() == "keep me"
    # a key already readable by others is refused, never used nor rewritten
    loose = tmp_path / "loose"
    ensure_certificates(loose)
    (loose / "fleet-key.pem").chmod(0o644)
    with pytest.raises(ConfigurationError, match="readable by others"):
        ensure_certificates(loose)


@pytest.mark.parametrize("where", ["a-file", "/proc/1/nothing"])
def test_cluster_tls_given_a_file_or_an_impossible_folder_is_a_message(tmp_path, capsys, where):
    path = tmp_path / where if not where.startswith("/") else Path(where)
    if where == "a-file":
        path.write_text("")
    err = usage_error(["cluster", "--local", "--tls", str(path), "--port", "0"], capsys)
    assert str(path) in err


def test_a_candidate_whose_name_holds_an_equals_sign_is_that_file(tiny_conv_onnx, tmp_path):
    from harness.variants.candidates import CandidateSpec

    folder = tmp_path / "cand"
    folder.mkdir()
    (folder / "a=b.onnx").write_bytes(tiny_conv_onnx.read_bytes())
    spec = CandidateSpec.parse(f"{folder}/a=b.onnx")
    assert spec.source == f"{folder}/a=b.onnx" and spec.label == "a=b.onnx"
    assert CandidateSpec.parse(f"{folder}/a=b.onnx=mine").label == "mine"


def test_gate_candidates_resolve_beside_the_config_and_labels_keep_their_separators_out(tmp_path, tiny_conv_onnx):
    from harness.verdict.gate import load_gate_config
    from targets.errors import ConfigurationError

    (tmp_path / "cand").write_bytes(tiny_conv_onnx.read_bytes())  # no .onnx suffix
    config = tmp_path / "speedproof.toml"
    config.write_text(f'[[check]]\nmodel = "{tiny_conv_onnx}"\ncandidates = ["cand=c"]\n')
    [check] = load_gate_config(config).checks
    assert check.candidates == (f"{tmp_path / 'cand'}=c",)
    config.write_text(f'[[check]]\nmodel = "{tiny_conv_onnx}"\ncandidates = [{{path = "cand", label = "a/b"}}]\n')
    with pytest.raises(ConfigurationError, match="holds '/' or '='"):
        load_gate_config(config)


def test_a_model_whose_path_is_not_utf8_is_named_plainly(tiny_conv_onnx, tmp_path, capsys):
    model = Path(os.fsdecode(bytes(tmp_path) + b"/bad\xff.onnx"))
    model.write_bytes(tiny_conv_onnx.read_bytes())
    assert "its path is not UTF-8" in usage_error(["bench", str(model), "--batch", "1"], capsys)


def test_batches_the_policy_asks_for_are_checked_against_the_cap_before_measuring(
    tiny_conv_onnx, tmp_path, capsys, monkeypatch
):
    """One sample fits the 1 MiB cap; the policy's throughput batch of 4096 does not: a usage error
    naming that option, before anything is measured (it was a failed cell naming batch 8 before)."""
    monkeypatch.setenv("SPEEDPROOF_MAX_INPUT_MB", "1")
    args = ["verify", str(tiny_conv_onnx), "--recipes", "identity", "--throughput-batch-size", "4096"]
    err = usage_error([*args, "--out", str(tmp_path / "o")], capsys)
    assert "--throughput-batch-size 4096" in err and "or 0 to measure no throughput pair" in err
    assert not list((tmp_path / "o").glob("*.json"))


INTERRUPTED_IMPORT = """
import sys

class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "harness.cli":
            raise KeyboardInterrupt  # the Ctrl-C, landing while Python imports the command line
        return None

sys.meta_path.insert(0, Interrupt())
from harness.entry import script_main
script_main()
"""


def test_a_ctrl_c_while_python_imports_the_command_line_is_an_interruption_not_a_traceback():
    completed = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_IMPORT], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 130 and "interrupted" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_a_study_with_a_damaged_trial_is_a_message_not_a_traceback(tiny_conv_onnx, tmp_path, capsys):
    import optuna

    from harness.search.job import OUTCOME_ATTRIBUTE, STUDY_NAME

    folder = _search_folder(tmp_path, tiny_conv_onnx)
    (folder / "study.db").unlink()
    study = optuna.create_study(
        study_name=STUDY_NAME, storage=f"sqlite:///{folder / 'study.db'}", directions=["maximize", "maximize"]
    )
    trial = study.ask()
    trial.set_user_attr(OUTCOME_ATTRIBUTE, {"recipe": 5})  # not what a search stores
    study.tell(trial, [1.0, 1.0])
    err = usage_error(["search", "--resume", str(folder), "--budget-s", "5"], capsys)
    assert "study.db: cannot be continued" in err
