"""What a reader sees first: one line per model, "latency only" for random weights, the file of
each accepted variant."""

from harness.reports.html import html_report
from harness.reports.table import quality_text, verdict_notes, verdict_summary
from tests.helpers import BASELINE_CELL, minimal_record


def _record(tmp_path):
    kept = tmp_path / "01-structured.onnx"
    kept.write_bytes(b"onnx")
    accepted = {
        **BASELINE_CELL,
        "variant": "structured:0.5",
        "speedup": {"ratio": 1.5, "ci_low": 1.3, "ci_high": 1.7},
        "artifact": {"path": str(kept), "sha256": "ab" * 32, "bytes": 4, "zipped_bytes": 4},
        "verdict": {"decision": "ACCEPT", "reasons": []},
    }
    rejected = {
        **BASELINE_CELL,
        "variant": "unstructured:0.9",
        "artifact": {"path": str(tmp_path / "gone.onnx"), "sha256": "cd" * 32, "bytes": 4, "zipped_bytes": 4},
        "verdict": {"decision": "REJECT", "reasons": [{"code": "NO_REAL_SPEEDUP", "message": "m"}]},
    }
    record = minimal_record({**BASELINE_CELL, "reference": True}, accepted, rejected)
    record.update(command="verify", model_source={"latency_only": True})
    return record


def test_one_line_per_model_and_the_file_that_ships(tmp_path):
    record = _record(tmp_path)
    assert verdict_summary(record) == [
        "m: accepted structured:0.5 (1.50x [1.30, 1.70]); "
        "rejected unstructured:0.9 (NO_REAL_SPEEDUP; next step: reject)"
    ]
    notes = verdict_notes(record)
    assert any(note.startswith("ACCEPTED m structured:0.5: ship ") and "gone" not in note for note in notes)
    assert 'ul class="summary"' in html_report([record])


def test_random_weights_have_no_quality_figure():
    assert quality_text({"metric": "fidelity", "top1_agreement": 0.0, "mean_cosine": 0.31}, True) == "latency only"


def test_the_pareto_front_keeps_what_no_other_point_beats():
    from harness.reports.plots import pareto_figure, pareto_points

    def cell(variant, ratio, accuracy):
        speedup = {"ratio": ratio, "ci_low": ratio, "ci_high": ratio} if ratio else None
        return {**BASELINE_CELL, "variant": variant, "accuracy": accuracy, "speedup": speedup}

    record = minimal_record(
        {**cell("baseline", None, 0.99), "reference": True},
        cell("fast", 2.0, 0.985),  # faster, slightly less accurate: on the front
        cell("dominated", 1.5, 0.97),  # slower and less accurate than "fast"
        cell("slow", 0.8, 0.99),  # slower, no more accurate than the baseline
    )
    front = {label: on_front for label, _, _, on_front in pareto_points(record)}
    assert front == {"m baseline": True, "m fast": True, "m dominated": False, "m slow": False}
    assert pareto_figure(record)[:8] == b"\x89PNG\r\n\x1a\n"
