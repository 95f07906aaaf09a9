"""`speedproof gate`: the CI release gate over the checks of a TOML config."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

from harness.commands.options import (
    add_cluster_options,
    add_out_option,
    add_policy_options,
    apply_tls_options,
    output_file,
    policy_keywords,
    wrapped,
)
from harness.progress import TerminalProgress
from harness.reports import report_file_text
from targets.errors import SpeedproofError
from targets.files_out import append_output, check_output, write_output

NAME = "gate"
HELP = "CI release gate: verify the checks of a config; exit 1 when a required variant is rejected"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = wrapped(
        "Verify every [[check]] of a TOML config on each target it names (targets this host cannot run, "
        "or with --cluster that no worker offers, are reported as skipped with the reason). Writes the record, "
        "a JUnit XML file (one testcase per cell; failures carry the reasons) and a markdown summary, which is "
        "also appended to $GITHUB_STEP_SUMMARY when that is set. Exit codes: 0 every required variant accepted; 1 a "
        "required variant rejected, a regression against --baseline, nothing verified, or a skipped "
        "target with --require-all-targets; 2 usage or config error."
    )
    parser.epilog = textwrap.dedent(
        """\
        config example (speedproof.toml):
          [[check]]
          model = "resnet18"                 # any model source
          input_shape = [1, 3, 224, 224]     # when the source needs one
          recipes = ["structured:0.5", "unstructured:0.9"]
          candidates = ["int8.onnx=int8"]    # files made elsewhere (relative to the config's folder)
          required = ["structured:0.5"]      # recipes or candidate labels that must be ACCEPTED
          targets = ["x86-cpu", "cuda-gpu"]  # default: the one that suits the host
          # remote = "ssh://pi@rpi5.local"   # measure this check on another machine
          # device = "rpi5"                  # with --cluster: a worker started with --device rpi5
          [policy]                           # for every check; [check.policy] for one
          min_speedup = 1.2
        """
    )
    parser.add_argument(
        "--config", type=Path, default=Path("speedproof.toml"), metavar="FILE", help="gate config (default %(default)s)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="RECORD",
        help="a stored gate or verify record: a speedup that fell beyond max_regression, or an ACCEPT that "
        "became a REJECT, is a regression (exit 1)",
    )
    parser.add_argument(
        "--allow-other-host",
        action="store_true",
        help="compare against a --baseline record measured on another host (refused by default)",
    )
    parser.add_argument(
        "--require-all-targets", action="store_true", help="a target this host cannot run fails the gate"
    )
    parser.add_argument(
        "--junit", type=output_file, default=None, metavar="FILE", help="JUnit XML path (default: beside the record)"
    )
    parser.add_argument(
        "--ssh-config",
        type=Path,
        default=None,
        metavar="FILE",
        help="an OpenSSH config file for checks with a remote (ssh -F FILE); default: ~/.ssh/config",
    )
    add_cluster_options(parser, device=False)
    parser.add_argument(
        "--summary",
        type=output_file,
        default=None,
        metavar="FILE",
        help="markdown summary path (default: beside the record)",
    )
    add_out_option(parser)
    add_policy_options(parser, with_file=False)


def run(args: argparse.Namespace) -> int:
    import harness.api as api
    from harness.reports.junit import junit_xml
    from harness.reports.markdown import markdown_report
    from harness.reports.table import record_text

    inputs = (args.config, args.baseline)
    for option, output in (("--junit", args.junit), ("--summary", args.summary)):
        if output is not None:
            check_output(output, option, inputs=inputs)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        check_output(Path(step_summary), "$GITHUB_STEP_SUMMARY", inputs=inputs, append=True)
    if args.cluster:
        apply_tls_options(args)
    result = api.gate(
        args.config,
        baseline=args.baseline,
        allow_other_host=args.allow_other_host,
        require_all_targets=args.require_all_targets,
        ssh_config=args.ssh_config,
        cluster=args.cluster,
        out=args.out,
        progress=TerminalProgress(enabled=sys.stderr.isatty()),
        **policy_keywords(args),
    )
    record, path = result.record, result.path
    assert path is not None
    gate = record["gate"]
    status = ["**gate passed**" if gate["exit_code"] == 0 else "**gate failed**"]
    status.extend(f"- {failure}" for failure in gate["failures"])
    status.extend(f"- skipped: {item['model']} on {item['target']}: {item['reason']}" for item in gate["skipped"])
    summary = markdown_report(record, status)
    junit_path = args.junit or path.with_suffix(".xml")
    summary_path = args.summary or path.with_suffix(".md")
    # the record is written; a report that cannot be (a full disk, a path changed during the run) is
    # a failure of the gate that says so, never a traceback, and the other report is still written
    unwritten: list[str] = []
    written = [f"record written to {path}"]
    outputs = (
        ("--junit", "JUnit XML", junit_path, report_file_text(junit_xml(record), "junit")),
        ("--summary", "summary", summary_path, report_file_text(summary, "md")),
    )
    for option, what, output, text in outputs:
        try:
            write_output(output, text, option, inputs=inputs)
            written.append(f"{what}: {output}")
        except SpeedproofError as error:
            unwritten.append(str(error))
    if step_summary:
        try:
            append_output(Path(step_summary), report_file_text(summary, "md"), "$GITHUB_STEP_SUMMARY", inputs=inputs)
        except SpeedproofError as error:
            unwritten.append(str(error))
    print(record_text(record))
    print()
    print("gate passed" if gate["exit_code"] == 0 else "gate FAILED:\n  " + "\n  ".join(gate["failures"]))
    for item in gate["skipped"]:
        print(f"skipped: {item['model']} on {item['target']}: {item['reason']}")
    print("\n".join(written))
    for problem in unwritten:
        print(f"error: {problem}", file=sys.stderr)
    return max(int(gate["exit_code"]), 1) if unwritten else int(gate["exit_code"])
