"""A detector whose int8 or a candidate zeroed its class scores: the output [1, 4 + 80, N] holds
boxes in pixels and scores in 0-1, so the whole tensor's cosine stays 0.9999+ while the detector
finds nothing. Verify judges closeness per channel too, and says which channels collapsed."""

from __future__ import annotations

from pathlib import Path

import torch

from harness.cli import main
from tests.helpers import FAST_POLICY_FLAGS


class _Detector(torch.nn.Module):
    def __init__(self, dead_scores: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU())
        self.boxes = torch.nn.Conv2d(16, 4, 1)
        self.scores = torch.nn.Conv2d(16, 80, 1)
        self.dead_scores = dead_scores

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body(x)
        boxes = torch.sigmoid(self.boxes(features)) * 640
        scores = torch.sigmoid(self.scores(features)) * (0.0 if self.dead_scores else 1.0)
        return torch.cat([boxes, scores], 1).flatten(2)


def test_a_candidate_with_a_dead_score_head_is_fidelity_low_with_its_channels_named(tmp_path, capsys):
    from exporters.torch_to_onnx import export_to_onnx

    example = (torch.rand(1, 3, 16, 16),)
    model = export_to_onnx(_Detector().eval(), example, tmp_path / "detector.onnx")
    dead = export_to_onnx(_Detector(dead_scores=True).eval(), example, tmp_path / "dead.onnx")
    args = ["verify", str(model), "--candidate", f"{dead}=dead", *FAST_POLICY_FLAGS, "--out", str(tmp_path / "out")]
    main(args)
    printed = capsys.readouterr().out
    line = next(line for line in printed.splitlines() if line.startswith("FIDELITY_LOW detector dead"))
    assert "80 of its 84 channels on axis 1 collapsed" in line and "channels 4-83" in line and "hides them" in line
    assert "ACCEPT " not in printed
    assert Path(model).is_file()
