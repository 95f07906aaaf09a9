"""Reports of a real verify record: the table, markdown, self-contained HTML with its plots, JUnit
XML; and `compare`'s table and plot on a tiny source."""

import base64
import re
import xml.etree.ElementTree as ET

import pytest

from harness.cli import EXIT_OK, main
from harness.reports.plots import compare_figure, speedup_figure
from harness.reports.table import compare_table
from harness.verdict.pruning_sweep import compare_recipes
from targets.errors import SpeedproofError
from tests.helpers import FAST_POLICY_FLAGS, TINY_CNN

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def verify_record_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    code = main(
        [
            "verify",
            TINY_CNN,
            "--recipes",
            "identity,int8-dynamic",
            "--threads",
            "1",
            "--out",
            str(out),
            "--json",
            *FAST_POLICY_FLAGS,
        ]
    )
    assert code in (0, 1)
    return next(out.glob("*.json"))


@pytest.mark.parametrize("fmt", ["table", "md", "html", "junit"])
def test_every_report_format_renders_a_verify_record(verify_record_path, tmp_path, fmt, capsys):
    output = tmp_path / f"report.{fmt}"
    assert main(["report", str(verify_record_path), "--format", fmt, "--output", str(output)]) == EXIT_OK
    text = output.read_text()
    assert "int8-dynamic" in text and "identity" in text
    if fmt == "junit":
        cases = ET.fromstring(text.split("\n", 1)[1]).findall(".//testcase")
        assert len(cases) == 3
    if fmt == "md":
        assert text.startswith("## speedproof verify") and "| decision" in text.replace("  ", " ")


def test_html_report_is_self_contained_with_an_embedded_plot(verify_record_path, capsys):
    assert main(["report", str(verify_record_path), "--format", "html"]) == EXIT_OK
    page = capsys.readouterr().out
    assert page.startswith("<!DOCTYPE html>") and "REJECT" in page
    assert not re.search(r'src="(?!data:)', page) and "<script" not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert images and base64.b64decode(images[0]).startswith(PNG_MAGIC)


def test_report_of_a_missing_record_is_a_usage_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_speedup_plot_is_a_png(verify_record_path):
    import json

    png = speedup_figure(json.loads(verify_record_path.read_text()))
    assert png is not None and png.startswith(PNG_MAGIC) and len(png) > 5000


def test_compare_recipes_cover_both_kinds_and_semi_structured_once():
    points = compare_recipes((0.5, 0.3), finetune_epochs=2)
    assert [recipe for _, _, recipe in points] == [
        "structured:0.3:finetune=2",
        "unstructured:0.3:finetune=2",
        "structured:0.5:finetune=2",
        "unstructured:0.5:finetune=2",
        "semi-structured:finetune=2",
    ]
    with pytest.raises(SpeedproofError, match="strictly between 0 and 1"):
        compare_recipes((0.5, 1.0))


def test_compare_command_writes_a_table_a_record_and_a_plot(tmp_path, capsys):
    out = tmp_path / "results"
    # a candidate given as package.module:function (the same net, made elsewhere) joins the sweep as a point
    candidate = "tests.tiny_models:tiny_cnn_without_data=same-net"
    arguments = ["compare", TINY_CNN, "--sparsity", "0.3,0.6", "--candidate", candidate, "--threads", "1"]
    code = main([*arguments, "--out", str(out), *FAST_POLICY_FLAGS])
    printed = capsys.readouterr().out
    assert code == EXIT_OK
    assert "structured" in printed and "unstructured" in printed and "semi-structured" in printed
    assert "candidate same-net" in printed
    plot = next(out.glob("*.png"))
    assert plot.read_bytes().startswith(PNG_MAGIC) and plot.stat().st_size > 5000
    import json

    record = json.loads(next(out.glob("*.json")).read_text())
    points = record["compare"]["points"]
    assert len(points) == 6 and all(point["speedup"] for point in points)
    [same] = [p for p in points if p["kind"] == "candidate"]
    assert same["recipe"] == "same-net" and same["sparsity"] == 0.0 and same["decision"] == "REJECT"
    unstructured = [p for p in points if p["kind"] == "unstructured"]
    assert all(p["mac_reduction"] == pytest.approx(1.0) for p in unstructured)  # zeros still multiplied
    assert compare_figure(record).startswith(PNG_MAGIC)


def test_a_sweep_on_two_runtimes_has_a_backend_column_and_a_line_per_runtime_in_its_plot():
    def point(kind, sparsity, backend, ratio):
        speedup = {"ratio": ratio, "ci_low": ratio - 0.1, "ci_high": ratio + 0.1}
        return {
            "kind": kind,
            "sparsity": sparsity,
            "recipe": f"{kind}:{sparsity}",
            "speedup": speedup,
            "zipped_reduction": 1.5,
            "mac_reduction": 2.0,
            "decision": "ACCEPT",
            "reasons": [],
            "backend": backend,
        }

    points = [
        point(kind, level, backend, 1.5)
        for backend in ("onnxruntime", "openvino")
        for kind in ("structured", "unstructured")
        for level in (0.3, 0.6)
    ]
    record = {"compare": {"model": "m", "points": points}, "policy": {"min_speedup": 1.1}}
    table = compare_table(record)
    assert table.splitlines()[0].split()[:2] == ["backend", "kind"]
    assert sum(" openvino " in f" {line} " for line in table.splitlines()) == 4
    assert compare_figure(record).startswith(PNG_MAGIC)


def test_compare_with_batch_sizes_plots_each_variants_speedup_curve(tmp_path, capsys):
    out = tmp_path / "results"
    plot = tmp_path / "sweep.png"
    arguments = ["compare", TINY_CNN, "--sparsity", "0.5", "--batch-sizes", "4", "--threads", "1", "--out", str(out)]
    code = main([*arguments, "--plot", str(plot), *FAST_POLICY_FLAGS])
    printed = capsys.readouterr().out
    assert code == EXIT_OK
    curve_plot = tmp_path / "sweep-batch.png"
    assert f"speedup against batch size written to {curve_plot}" in printed
    assert plot.read_bytes().startswith(PNG_MAGIC) and curve_plot.read_bytes().startswith(PNG_MAGIC)
    import json

    record = json.loads(next(out.glob("*.json")).read_text())
    variants = [cell for cell in record["cells"] if not cell.get("reference")]
    assert len(variants) == 3
    for cell in variants:
        assert [point["batch_size"] for point in cell["batch_curve"]] == [1, 4]


def test_the_policy_line_names_both_requirements():
    from harness.reports.table import policy_line

    policy = {"metric": "p50", "batch_size": 1, "min_speedup": 1.1, "confidence": 0.95}
    assert policy_line({"policy": policy}) == (
        "policy: p50 speedup at batch 1, interval lower end >= 1.1 at 95% confidence"
    )
    assert policy_line({"policy": {**policy, "throughput_batch_size": 64}}).startswith(
        "policy: p50 speedup at batch 1 and throughput speedup at batch 64, interval lower end >= 1.1"
    )


@pytest.mark.parametrize(
    ("host_state", "marker"),
    [
        ({"block_levels": [0.13, 0.18], "moved": True, "unusual_blocks": 0}, " (host moved)"),
        ({"block_levels": [0.18, 0.19], "moved": False, "unusual_blocks": 2}, " (host unusual)"),
        ({"block_levels": [0.18, 0.13], "moved": True, "unusual_blocks": 1}, " (host moved)"),
        ({"block_levels": [0.13, 0.131], "moved": False, "unusual_blocks": 0}, ""),
        (None, ""),  # a record from before host states
    ],
)
def test_the_verdict_table_marks_a_speedup_measured_while_the_host_moved_or_sat_away(host_state, marker):
    from harness.reports.table import host_state_marker, verdict_rows

    cell = {"ab": {"host_state": host_state}, "speedup": {"ratio": 2.0, "ci_low": 1.8, "ci_high": 2.2}}
    assert host_state_marker(cell) == marker
    record = {
        "cells": [
            {"model": "m", "variant": "v", "backend": "onnxruntime", "status": "ok", **cell},
        ]
    }
    _, rows = verdict_rows(record)
    assert "2.00x [1.80, 2.20]" + marker in rows[0]
