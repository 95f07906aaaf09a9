"""Names and messages come from users: a model file named with a control character, an escape
sequence or HTML still gives JUnit XML that parses, a markdown summary (and `$GITHUB_STEP_SUMMARY`)
without raw HTML, and a terminal table without escape sequences. A record whose cell fields have
the wrong type is damaged, and the error names the key."""

from __future__ import annotations

import json
from xml.etree import ElementTree

import pytest

from harness.cli import EXIT_USAGE, main
from harness.reports import render_report
from harness.reports.text_safety import markdown_safe, terminal_safe, xml_safe
from tests.faults.conftest import FAST_VERIFY, no_traceback
from tests.helpers import RENDERABLE_CELL, minimal_record

HOSTILE_NAME = "m\x01\x1b[31mred\x1b[0m<img src=x onerror=alert(1)>"


def test_a_gate_over_a_hostile_model_name_writes_outputs_that_parse_and_show_no_markup(sandbox, tiny_conv_onnx):
    model = sandbox.root / f"{HOSTILE_NAME}.onnx"
    model.write_bytes(tiny_conv_onnx.read_bytes())
    config = sandbox.root / "speedproof.toml"
    config.write_text(f'[[check]]\nmodel = {json.dumps(str(model))}\nrecipes = ["identity"]\n')
    step_summary = sandbox.root / "step-summary.md"
    completed = sandbox.run(
        "gate", "--config", str(config), "--out", str(sandbox.out), *FAST_VERIFY, GITHUB_STEP_SUMMARY=str(step_summary)
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr  # identity is rejected, but not required
    assert no_traceback(completed.stderr)
    [record] = sandbox.records()
    cases = list(ElementTree.parse(record.with_suffix(".xml")).getroot().iter("testcase"))
    assert cases and all("\\x01" in case.get("classname") for case in cases)
    for summary in (record.with_suffix(".md").read_text(), step_summary.read_text()):
        assert "<img" not in summary and "&lt;img src=x onerror=alert(1)&gt;" in summary
        assert "\x1b" not in summary and "\x01" not in summary
    assert "\x1b" not in completed.stdout and "\\x1b[31mred" in completed.stdout


@pytest.mark.parametrize("report_format", ["junit", "md", "table", "html"])
def test_reports_of_a_record_with_control_characters(report_format):
    cell = {**RENDERABLE_CELL, "model": HOSTILE_NAME, "error": "failed:\x00\x7f\ud800 <b>", "status": "failed"}
    text = render_report(minimal_record(cell), report_format)
    assert "\x1b" not in text and "\x01" not in text and "\x00" not in text
    if report_format == "junit":
        ElementTree.fromstring(text.encode("utf-8", "surrogatepass"))  # parses
    if report_format in ("md", "html"):
        assert "<img" not in text and "<b>" not in text


def test_the_text_filters():
    assert terminal_safe("a\x1b[2Jb\tc\nd\x9b") == "a\\x1b[2Jb\tc\nd\\x9b"
    assert xml_safe("a\x01b\ud800c\ufffe\n") == "a\\x01b\\ud800c\\ufffe\n"
    assert markdown_safe("<script>|x&y") == "&lt;script&gt;\\|x&amp;y"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"warnings": "abc"}, "cells[0].warnings is 'abc'; expected a list"),
        ({"warnings": [1]}, "cells[0].warnings[0] is 1; expected a string"),
        ({"error": 5}, "cells[0].error is 5; expected a string or null"),
        ({"reference": "yes"}, "cells[0].reference is 'yes'; expected true or false"),
        ({"cv": "0.1"}, "cells[0].cv is '0.1'; expected an integer or a number or null"),
        ({"iterations": True}, "cells[0].iterations is True; expected an integer"),
        ({"speedup": {"ratio": "fast"}}, "cells[0].speedup.ratio is 'fast'"),
        (
            {"verdict": {"decision": "ACCEPT", "reasons": ["x"]}},
            "cells[0].verdict.reasons[0] is 'x'; expected an object",
        ),
        ({"verdict": {"decision": "ACCEPT", "hints": "abc"}}, "cells[0].verdict.hints is 'abc'; expected a list"),
        ({"verdict": {"reasons": []}}, "cells[0].verdict. has no 'decision'"),
    ],
)
def test_mistyped_cell_fields_are_damage_named_by_their_key(tmp_path, capsys, change, message):
    path = tmp_path / "record.json"
    path.write_text(json.dumps(minimal_record({**RENDERABLE_CELL, **change})))
    try:
        code = main(["report", str(path)])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and f"{path}: damaged record: {message}" in err and no_traceback(err)
