"""The speedup curve across batch sizes: where a variant starts or stops paying, and a real
verify run that measures it."""

import hashlib
from pathlib import Path

from harness.measure.speedup import SpeedupEstimate
from harness.verdict.batch_curve import BatchPoint, crossovers, curve_text
from harness.verdict.verify import VerifyRequest, run_verify
from tests.helpers import FAST_POLICY, FAST_PROTOCOL, TINY_CNN


def _point(batch, low, high, decidable=True):
    estimate = SpeedupEstimate("p50", (low + high) / 2, low, high, 0.95, 9, 1.0, 1.0, decidable=decidable)
    return BatchPoint(batch, estimate)


def test_pays_only_from_a_larger_batch():
    points = [_point(1, 0.9, 1.05), _point(8, 1.0, 1.08), _point(32, 1.3, 1.5)]
    assert crossovers(points, 1.1) == ["starts paying (>= 1.10x) between batch 8 and batch 32"]


def test_helps_at_32_and_hurts_at_256():
    points = [_point(32, 1.2, 1.4), _point(256, 0.7, 0.8), _point(8, 1.15, 1.3)]
    assert crossovers(points, 1.1) == ["stops paying (>= 1.10x) between batch 32 and batch 256"]


def test_undecided_and_failed_points_decide_no_crossover():
    points = [_point(1, 1.2, 1.4), _point(8, 0.5, 0.6, decidable=False), BatchPoint(16, None, "worker crashed")]
    assert crossovers(points, 1.1) == []
    assert "batch 16: failed" in curve_text(points, 1.1)


def test_verify_reports_the_curve_and_keeps_what_it_verified(tmp_path):
    request = VerifyRequest(
        model=TINY_CNN,
        recipes=("structured:0.5",),
        policy_overrides=FAST_POLICY,
        protocol=FAST_PROTOCOL,
        out_dir=tmp_path,
        batch_sizes=(1, 4),
    )
    record, _ = run_verify(request)
    cell = next(cell for cell in record["cells"] if cell["variant"] == "structured:0.5")
    assert [point["batch_size"] for point in cell["batch_curve"]] == [1, 4]
    assert cell["batch_curve"][0]["speedup"] == cell["speedup"]  # batch 1 is the deciding pair
    assert any(note.startswith("structured:0.5: speedup by batch size: batch 1:") for note in cell["verdict"]["notes"])
    # the verified artifact is kept beside the record: the record's path and sha256 are the file's
    kept = Path(cell["artifact"]["path"])
    assert kept.is_file() and str(kept).startswith(record["artifact_dir"])
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == cell["artifact"]["sha256"]
