"""A gate that ships files made elsewhere: `candidates` in a [[check]] (paths relative to the
config's folder), required by label; exit 0 when the required candidate is accepted, 1 when it is
rejected; a candidate that cannot exist is a config error before anything is measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import EXIT_CELL_FAILED, EXIT_OK, EXIT_USAGE, main
from tests.helpers import FAST_POLICY_TOML


def _conv_net(channels: int, path: Path) -> Path:
    import torch

    from exporters.torch_to_onnx import export_to_onnx

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, channels, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(channels, channels, 3, padding=1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(channels, 4),
    ).eval()
    return export_to_onnx(module, [torch.randn(2, 3, 48, 48)], path)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release folder: the baseline, a much lighter student beside it, and the config that ships it."""
    folder = tmp_path_factory.mktemp("release")
    _conv_net(96, folder / "teacher.onnx")
    (folder / "students").mkdir()
    _conv_net(4, folder / "students" / "student.onnx")
    return folder


def _gate(folder: Path, candidates: str, required: str, tmp_path: Path) -> tuple[int, dict | None]:
    config = folder / f"gate-{required}.toml"
    config.write_text(
        f"""
[[check]]
model = "{folder / "teacher.onnx"}"
candidates = {candidates}
required = ["{required}"]
{FAST_POLICY_TOML.replace("[policy]", "[check.policy]")}min_fidelity = 0
"""
    )
    out = tmp_path / "results"
    code = main(["gate", "--config", str(config), "--out", str(out)])
    records = sorted(out.glob("*.json"))
    return code, (json.loads(records[-1].read_text()) if records else None)


def test_a_required_candidate_that_is_faster_passes_and_the_baseline_itself_fails(release, tmp_path):
    candidates = '["students/student.onnx=student", {path = "teacher.onnx", label = "same"}]'
    code, record = _gate(release, candidates, "student", tmp_path / "pass")
    cells = {cell["variant"]: cell for cell in record["cells"]}
    assert code == EXIT_OK, cells["student"]["verdict"]
    assert cells["student"]["verdict"]["decision"] == "ACCEPT" and cells["student"]["verdict"]["next_step"] == "keep"
    assert cells["student"]["required"] and not cells["same"]["required"]
    code, record = _gate(release, candidates, "same", tmp_path / "fail")
    assert code == EXIT_CELL_FAILED
    assert any("required" in failure and "same" in failure for failure in record["gate"]["failures"])


@pytest.mark.parametrize(
    ("candidates", "required", "message"),
    [
        ('["students/missing.onnx"]', "missing.onnx", "check[0].candidates: --candidate"),
        ('["students/student.onnx=s"]', "student", "required names 'student'"),
        ("[3]", "x", "check[0].candidates[0] = 3"),
    ],
)
def test_candidate_config_errors(release, tmp_path, capsys, candidates, required, message):
    code, record = _gate(release, candidates, required, tmp_path)
    assert code == EXIT_USAGE and record is None
    assert message in capsys.readouterr().err
