"""JUnit XML of a result record, for CI systems that show test results: one testcase per cell.

A verdict cell that is REJECTED is a failure whose message lists the reason codes and whose text
carries every reason's sentence and the hints; a required variant's rejection is a failure, an
optional one's is reported as skipped (so the build stays green, as `gate` decides). A cell that
failed (could not be built or measured) is a failure, required or not, as it fails the gate. Cells of a
target the host could not run are skipped with the reason. Bench cells fail when they failed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from harness.reports.table import verdict_next_step
from harness.reports.text_safety import xml_safe


def _case_name(cell: dict[str, Any]) -> str:
    parts = [cell["variant"], f"{cell['backend']}", f"batch {cell['batch_size']}"]
    if cell.get("remote"):  # a board or a cluster's worker measured it: which device gave the verdict
        parts.append(f"on {cell['remote']}")
    return " ".join(str(part) for part in parts)


def _class_name(record: dict[str, Any], cell: dict[str, Any]) -> str:
    target = cell.get("target") or (record.get("target") or {}).get("name") or "target"
    return f"speedproof.{target}.{cell['model']}"


def _verdict_text(cell: dict[str, Any]) -> str:
    verdict = cell.get("verdict") or {}
    lines = [f"{reason['code']}: {reason['message']}" for reason in verdict.get("reasons", [])]
    lines.extend(f"hint: {hint}" for hint in verdict.get("hints", []))
    lines.extend(f"note: {note}" for note in verdict.get("notes", []))
    return "\n".join(lines)


def junit_xml(record: dict[str, Any]) -> str:
    """The record as a JUnit XML document (a <testsuite> per model and target)."""
    suites: dict[str, ET.Element] = {}
    root = ET.Element("testsuites", name=f"speedproof {record.get('command', '')}".strip())
    for cell in record.get("cells", []):
        suite_name = _class_name(record, cell)
        suite = suites.get(suite_name)
        if suite is None:
            suite = suites[suite_name] = ET.SubElement(root, "testsuite", name=suite_name)
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=_case_name(cell))
        duration = (cell.get("ab") or {}).get("duration_s") or cell.get("duration_s")
        case.set("time", f"{float(duration or 0.0):.3f}")
        _fill_case(case, cell)
    for cell_suite in suites.values():
        cases = list(cell_suite)
        cell_suite.set("tests", str(len(cases)))
        cell_suite.set("failures", str(sum(case.find("failure") is not None for case in cases)))
        cell_suite.set("skipped", str(sum(case.find("skipped") is not None for case in cases)))
        cell_suite.set("errors", "0")
    _make_xml_safe(root)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _fill_case(case: ET.Element, cell: dict[str, Any]) -> None:
    if cell.get("skipped"):
        ET.SubElement(case, "skipped", message=str(cell["skipped"]))
        return
    verdict = cell.get("verdict")
    if cell.get("reference") or verdict is None:
        if cell.get("status") != "ok":
            failure = ET.SubElement(case, "failure", message=str(cell.get("error") or "failed"), type="FAILED")
            failure.text = str(cell.get("error") or "")
        return
    if verdict["decision"] == "ACCEPT":
        speedup = cell.get("speedup") or {}
        case.set("name", case.get("name", "") + " ACCEPT")
        ET.SubElement(case, "system-out").text = (
            f"ACCEPT: speedup {speedup.get('ratio', 0):.2f}x [{speedup.get('ci_low', 0):.2f}, "
            f"{speedup.get('ci_high', 0):.2f}]"
        )
        return
    codes = " ".join(reason["code"] for reason in verdict["reasons"])
    message = f"REJECT {codes} (next step: {verdict_next_step(verdict)})"
    if cell.get("required", True) or cell.get("status") == "failed":
        failure = ET.SubElement(case, "failure", message=message, type=codes.split(" ")[0] if codes else "REJECT")
        failure.text = _verdict_text(cell)
    else:
        ET.SubElement(case, "skipped", message=f"{message} (not required)").text = _verdict_text(cell)


def _make_xml_safe(root: ET.Element) -> None:
    """Names and messages come from the user (a model, variant or error with a control character):
    every text and attribute gets only what XML 1.0 allows, so the file always parses."""
    for element in root.iter():
        element.text = None if element.text is None else xml_safe(element.text)
        element.tail = None if element.tail is None else xml_safe(element.tail)
        for key, value in element.attrib.items():
            element.set(key, xml_safe(value))
