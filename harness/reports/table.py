"""Plain-text tables of result records for the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.reports.decoder_table import decoder_notes, decoder_rows
from harness.reports.text_safety import terminal_safe
from harness.verdict.reasons import Decision, NextStep, ReasonCode, next_step_for

MIB = 1024 * 1024


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def bench_table(record: dict[str, Any]) -> str:
    headers, rows = bench_rows(record)
    table = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True, stralign="right")
    notes = bench_notes(record)
    return terminal_safe(table + ("\n\n" + "\n".join(notes) if notes else ""))


def bench_rows(record: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    # with variants, each row also says what the variant's quality is
    with_quality = len(record.get("variants") or []) > 1
    rows = []
    for cell in record["cells"]:
        latency = cell.get("latency_ms") or {}
        memory = cell.get("memory") or {}
        cold = cell.get("cold_start_ms") or {}
        if cell["status"] == "ok":
            status = "ok" + (
                f" ({len(cell['warnings'])} warning{'s' if len(cell['warnings']) > 1 else ''})"
                if cell["warnings"]
                else ""
            )
        else:
            status = "FAILED"
        rows.append(
            [
                cell["model"],
                cell["variant"],
                cell["backend"],
                (cell.get("provider") or "-").replace("ExecutionProvider", ""),
                cell["batch_size"],
                _number(latency.get("p50"), 3),
                _number(latency.get("p90"), 3),
                _number(latency.get("p99"), 3),
                _number(cell["cv"] * 100, 1) if cell.get("cv") is not None else "-",
                _number(cell.get("throughput_per_s"), 1),
                cell.get("iterations") or 0,
                _number(cold.get("session"), 0),
                _number(memory["peak_rss_bytes"] / MIB, 0) if memory else "-",
                *([quality_text(cell.get("quality"), latency_only(record))] if with_quality else []),
                status,
            ]
        )
    headers = [
        "model",
        "variant",
        "backend",
        "provider",
        "batch",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "CV %",
        "items/s",
        "iters",
        "load ms",
        "peak RSS MiB",
        *(["quality"] if with_quality else []),
        "status",
    ]
    return headers, rows


def bench_notes(record: dict[str, Any]) -> list[str]:
    notes = []
    for cell in record["cells"]:
        where = f"{cell['model']} {cell['variant']} {cell['backend']} batch {cell['batch_size']}"
        if cell["status"] != "ok":
            notes.append(f"FAILED {where}: {cell['error']}")
        for warning in cell.get("warnings", []):
            notes.append(f"warning {where}: {warning}")
    return notes


def _scaled_count(value: int | None) -> str:
    if value is None:
        return "-"
    for divisor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= divisor:
            return f"{value / divisor:.2f}{suffix}"
    return str(value)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def latency_only(record: dict[str, Any]) -> bool:
    """Whether the record's model has random weights: its quality figures mean nothing."""
    return bool((record.get("model_source") or {}).get("latency_only"))


def quality_text(quality: dict[str, Any] | None, random_weights: bool = False) -> str:
    if random_weights:
        return "latency only"
    if not quality:
        return "-"
    if quality.get("reference"):
        return "reference"
    if quality["metric"] == "accuracy":
        return f"acc {quality['accuracy'] * 100:.1f}%"
    if quality["metric"] == "task":
        return f"metric {quality['score']:.4g}"
    parts = []
    if quality.get("top1_agreement") is not None:
        parts.append(f"agree {quality['top1_agreement'] * 100:.1f}%")
    if quality.get("mean_cosine") is not None:
        parts.append(f"cos {quality['mean_cosine']:.4f}")
    if quality.get("auto_measure") == "cosine" and quality.get("snr_db") is not None:
        parts.append(f"SNR {quality['snr_db']:.0f} dB")
    return " ".join(parts) or "-"


def variants_table(record: dict[str, Any]) -> str:
    """One row per variant: the artifact's facts and quality, and whether it was built."""
    headers, rows = variants_rows(record)
    table = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True, stralign="right")
    notes = variants_notes(record)
    return terminal_safe(table + ("\n\n" + "\n".join(notes) if notes else ""))


def variants_rows(record: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows = []
    for variant in record["variants"]:
        facts = variant.get("artifact") or {}
        alignment = facts.get("alignment") or {}
        params, nonzero = facts.get("params"), facts.get("nonzero_params")
        rows.append(
            [
                variant["recipe"],
                _number(facts["bytes"] / 1e6, 2) if facts else "-",
                _number(facts["zipped_bytes"] / 1e6, 2) if facts else "-",
                _scaled_count(params),
                _share(nonzero / params) if params else "-",
                _scaled_count(facts.get("macs")),
                f"{_share(alignment.get('multiple_of_8'))} / {_share(alignment.get('multiple_of_16'))}"
                if alignment
                else "-",
                quality_text(variant.get("quality"), latency_only(record)),
                "ok" if variant["status"] == "ok" else "FAILED",
            ]
        )
    headers = ["recipe", "file MB", "zipped MB", "params", "non-zero", "MACs", "x8 / x16", "quality", "status"]
    return headers, rows


def variants_notes(record: dict[str, Any]) -> list[str]:
    notes = []
    for variant in record["variants"]:
        if variant["status"] != "ok":
            notes.append(f"FAILED {variant['recipe']}: {variant['error']}")
        notes.extend(f"warning {variant['recipe']}: {warning}" for warning in variant.get("warnings", []))
        notes.extend(
            f"MACs {variant['recipe']}: {note}" for note in (variant.get("artifact") or {}).get("macs_notes", [])
        )
        notes.extend(step_round_notes(variant))
    quality_notes = {str((variant.get("quality") or {}).get("note") or "") for variant in record["variants"]} - {""}
    notes.extend(f"note: {note}" for note in sorted(quality_notes))
    source = record.get("model_source") or {}
    if source.get("latency_only"):
        notes.append(f"{source.get('spec')} has random weights: quality is fidelity to the baseline, not accuracy")
    return notes


def step_round_notes(variant: dict[str, Any]) -> list[str]:
    """One line per iterative step (steps=N): what each round left and the accuracy after its
    recovery, e.g. `rounds structured: 1: params 43% acc 90.6% | 2: params 26% acc 90.0%`."""
    lines = []
    for step in variant.get("steps") or []:
        rounds = step.get("rounds") or []
        if not rounds:
            continue
        parts = []
        for note in rounds:
            figures = [f"params {note['params_kept']:.0%}"] if "params_kept" in note else []
            figures += [f"sparsity {note['sparsity']:.0%}"] if "sparsity" in note else []
            figures += [f"acc {note['accuracy']:.1%}"] if "accuracy" in note else []
            parts.append(f"{note['round']}: {' '.join(figures)}")
        lines.append(f"rounds {variant['recipe']} ({step['step']}): " + " | ".join(parts))
    return lines


def _relative(variant_value: float | None, baseline_value: float | None) -> str:
    if not variant_value or not baseline_value:
        return ""
    return f" ({variant_value / baseline_value:.2f}x)"


def speedup_text(speedup: dict[str, Any] | None) -> str:
    if not speedup:
        return "-"
    return f"{speedup['ratio']:.2f}x [{speedup['ci_low']:.2f}, {speedup['ci_high']:.2f}]"


def host_state_marker(cell: dict[str, Any]) -> str:
    """' (host moved)' when the host's speed moved under the cell's run, ' (host unusual)' when every
    block sat away from this host's usual level for the baseline; '' otherwise (and in older records)."""
    state = (cell.get("ab") or {}).get("host_state") or {}
    levels = state.get("block_levels") or []
    if levels and state.get("unusual_blocks") == len(levels):
        return " (host unusual)"
    if state.get("moved"):
        return " (host moved)"
    return ""


def detectable_text(speedup: dict[str, Any] | None) -> str:
    """The smallest speedup the interval's width could tell from none, as a relative figure."""
    detectable = (speedup or {}).get("detectable_speedup")
    if not isinstance(detectable, (int, float)) or detectable != detectable:  # absent (older record) or NaN
        return "-"
    return f"±{detectable - 1:.0%}"


def baseline_cell(record: dict[str, Any], cell: dict[str, Any]) -> dict[str, Any] | None:
    """The reference cell of the same model and backend (and target, in a gate record)."""
    for other in record["cells"]:
        if (
            other.get("reference")
            and other["model"] == cell["model"]
            and other["backend"] == cell["backend"]
            and other.get("target") == cell.get("target")
            and other.get("check") == cell.get("check")
        ):
            return other
    return None


def where_measured(cell: dict[str, Any]) -> str:
    """A gate cell's target, and the machine that measured it when that was not this host (a board over
    SSH, a cluster's worker)."""
    target = cell.get("target") or "-"
    return f"{target} @ {cell['remote']}" if cell.get("remote") else target


def record_backends(record: dict[str, Any]) -> list[str]:
    """The backends a record's cells ran on, in the order they first appear."""
    return list(dict.fromkeys(str(cell["backend"]) for cell in record.get("cells", []) if cell.get("backend")))


def judged_per_runtime(record: dict[str, Any]) -> bool:
    """A verdict record measured on several backends: tables per runtime and where each variant pays."""
    return record.get("command") in ("verify", "gate", "compare") and len(record_backends(record)) > 1


def on_backend(record: dict[str, Any], backend: str) -> dict[str, Any]:
    """The record with only the cells that ran on `backend`."""
    return {**record, "cells": [cell for cell in record["cells"] if cell.get("backend") == backend]}


def cell_place(record: dict[str, Any], cell: dict[str, Any]) -> str:
    """A cell named in a note: target, model, variant, and its backend when the record has several."""
    backend = f"on {cell['backend']}" if len(record_backends(record)) > 1 else None
    return " ".join(part for part in (cell.get("target"), cell["model"], cell["variant"], backend) if part)


def verdict_rows(record: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the verdict table (shared by the text, markdown and HTML reports); a record
    measured on several backends gets a backend column."""
    with_target = any(cell.get("target") for cell in record["cells"])
    with_backend = len(record_backends(record)) > 1
    rows = []
    for cell in record["cells"]:
        reference = baseline_cell(record, cell) or {}
        facts, base_facts = cell.get("artifact") or {}, reference.get("artifact") or {}
        memory = cell.get("memory") or {}
        base_memory = ((cell.get("ab") or {}).get("baseline") or {}).get("memory") or {}
        verdict = cell.get("verdict")
        next_step = "-"
        if cell.get("reference"):
            decision, codes = ("reference" if cell["status"] == "ok" else "FAILED"), ""
        elif verdict:
            decision, codes = verdict["decision"], " ".join(reason["code"] for reason in verdict["reasons"])
            next_step = verdict_next_step(verdict)
        else:
            decision, codes = "-", ""
        realization = (verdict or {}).get("realization")
        rows.append(
            [
                *([where_measured(cell)] if with_target else []),
                cell["model"],
                cell["variant"],
                *([cell["backend"]] if with_backend else []),
                (_number(facts["bytes"] / 1e6, 2) + _relative(facts.get("bytes"), base_facts.get("bytes")))
                if facts
                else "-",
                (
                    _number(facts["zipped_bytes"] / 1e6, 2)
                    + _relative(facts.get("zipped_bytes"), base_facts.get("zipped_bytes"))
                )
                if facts
                else "-",
                (_scaled_count(facts.get("macs")) + _relative(facts.get("macs"), base_facts.get("macs")))
                if facts
                else "-",
                speedup_text(cell.get("speedup")) + (host_state_marker(cell) if cell.get("speedup") else ""),
                detectable_text(cell.get("speedup")),
                _number(realization, 2) if realization is not None else "-",
                quality_text(cell.get("quality"), latency_only(record)),
                (
                    _number(memory["peak_rss_bytes"] / MIB, 0)
                    + _relative(memory.get("peak_rss_bytes"), base_memory.get("peak_rss_bytes"))
                )
                if memory
                else "-",
                decision,
                next_step,
                codes,
            ]
        )
    headers = [
        *(["target"] if with_target else []),
        "model",
        "variant",
        *(["backend"] if with_backend else []),
        "file MB (vs base)",
        "zipped MB",
        "MACs",
        "speedup [CI]",
        "MDE",
        "realized",
        "quality",
        "peak RSS MiB",
        "decision",
        "next",
        "reasons",
    ]
    return headers, rows


def verdict_next_step(verdict: dict[str, Any]) -> str:
    """keep, tune, reject, remeasure or fix; records written before next_step existed get it from their codes."""
    if verdict.get("next_step"):
        return str(verdict["next_step"])
    try:
        codes = [ReasonCode(reason["code"]) for reason in verdict.get("reasons", [])]
        return str(next_step_for(Decision(verdict["decision"]), codes))
    except (ValueError, KeyError):
        return "-"


def verdict_notes(record: dict[str, Any]) -> list[str]:
    """Every reason's sentence, hint and note, one line each, named by the cell. A note that every
    variant of a model shares (e.g. random weights) is said once for the model."""
    lines = []
    said_for_model: set[tuple[str, str]] = set()
    said_warnings: set[tuple[Any, ...]] = set()
    for cell in record["cells"]:
        where = cell_place(record, cell)
        if cell.get("reference") and cell["status"] != "ok":
            lines.append(f"FAILED {where}: {cell['error']}")
        verdict = cell.get("verdict") or {}
        lines.extend(f"{reason['code']} {where}: {reason['message']}" for reason in verdict.get("reasons", []))
        lines.extend(f"hint {where}: {hint}" for hint in verdict.get("hints", []))
        if verdict and verdict.get("decision") != "ACCEPT":
            lines.append(f"next step {where}: {_next_step_advice(verdict)}")
        for warning in cell.get("warnings", []):
            # a variant's build warning is the same on every runtime: said once, without the runtime's name
            shared = not warning.startswith(("baseline worker:", "variant worker:"))
            said = (cell.get("check"), cell.get("target"), cell["model"], cell["variant"], warning)
            if shared and said in said_warnings:
                continue
            said_warnings.add(said)
            plain = " ".join(part for part in (cell.get("target"), cell["model"], cell["variant"]) if part)
            lines.append(f"warning {plain if shared else where}: {warning}")
        artifact = cell.get("artifact") or {}
        if cell.get("reference") or cell["variant"] == "baseline" or artifact.get("macs") is None:
            lines.extend(f"MACs {where}: {note}" for note in artifact.get("macs_notes") or [])
        if verdict.get("decision") == "ACCEPT" and artifact.get("path"):
            kept = "" if Path(artifact["path"]).exists() else " (no longer on disk)"
            lines.append(
                f"ACCEPTED {where}: ship {artifact['path']}{kept}, sha256 {str(artifact.get('sha256'))[:16]}..."
            )
        quality_note = (cell.get("quality") or {}).get("note")
        for note in [*verdict.get("notes", []), *([quality_note] if quality_note else [])]:
            if (cell["model"], note) not in said_for_model:
                said_for_model.add((cell["model"], note))
                lines.append(f"note {cell['model']}: {note}")
    return lines


def _next_step_advice(verdict: dict[str, Any]) -> str:
    step = verdict_next_step(verdict)
    try:
        return NextStep(step).advice
    except ValueError:
        return step


def verdict_summary(record: dict[str, Any]) -> list[str]:
    """One line per model (and target): which variants were accepted, which rejected and why."""
    by_model: dict[str, tuple[list[str], list[str]]] = {}
    for cell in record.get("cells", []):
        verdict = cell.get("verdict")
        if cell.get("reference") or not verdict:
            continue
        several = len(record_backends(record)) > 1
        name = " on ".join(part for part in (cell["model"], cell.get("target"), several and cell["backend"]) if part)
        accepted, rejected = by_model.setdefault(name, ([], []))
        if verdict["decision"] == "ACCEPT":
            accepted.append(f"{cell['variant']} ({speedup_text(cell.get('speedup'))})")
        else:
            codes = " ".join(reason["code"] for reason in verdict.get("reasons", []))
            rejected.append(f"{cell['variant']} ({codes}; next step: {verdict_next_step(verdict)})")
    return [
        f"{name}: accepted {', '.join(accepted) or 'none'}; rejected {', '.join(rejected) or 'none'}"
        for name, (accepted, rejected) in by_model.items()
    ]


def record_tables(record: dict[str, Any]) -> tuple[list[str], list[list[Any]], list[str]]:
    """Headers, rows and notes of the main table of any record, by the command that wrote it."""
    command = record.get("command")
    if command in ("verify", "search") and record.get("decoder"):
        headers, rows = decoder_rows(record)
        return headers, rows, [*decoder_notes(record), *verdict_notes(record)]
    if command in ("verify", "gate", "compare", "search"):
        headers, rows = verdict_rows(record)
        return headers, rows, verdict_notes(record)
    if command == "sensitivity":
        headers, rows = sensitivity_rows(record)
        return headers, rows, []
    if command == "variants":
        headers, rows = variants_rows(record)
        return headers, rows, variants_notes(record)
    headers, rows = bench_rows(record)
    return headers, rows, bench_notes(record)


def policy_line(record: dict[str, Any]) -> str:
    policy = record.get("policy") or {}
    if not policy:
        return ""
    also = policy.get("throughput_batch_size")
    required = f"{policy.get('metric')} speedup at batch {policy.get('batch_size')}"
    if also:
        required += f" and throughput speedup at batch {also}"
    return (
        f"policy: {required}, interval lower end >= {policy.get('min_speedup')} at "
        f"{policy.get('confidence', 0):.0%} confidence"
    )


def record_text(record: dict[str, Any]) -> str:
    """The terminal table of any record, with its notes; a verdict record measured on several backends
    gets one table per backend, then where each variant pays."""
    headers, rows, notes = record_tables(record)
    table = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True, stralign="right")
    if judged_per_runtime(record):
        tables = []
        for backend in record_backends(record):
            backend_headers, backend_rows = verdict_rows(on_backend(record, backend))
            tables.append(
                f"on {backend}:\n"
                + tabulate(
                    backend_rows, headers=backend_headers, tablefmt="simple", disable_numparse=True, stralign="right"
                )
            )
        table = "\n\n".join(tables) + "\n\n" + "\n".join(runtime_lines(record))
    header = policy_line(record)
    return terminal_safe((header + "\n\n" if header else "") + table + ("\n\n" + "\n".join(notes) if notes else ""))


def runtime_lines(record: dict[str, Any]) -> list[str]:
    """Where each compression pays, one line per variant over the record's backends ("int8-static: 1.04x
    [0.98, 1.10] on onnxruntime REJECT, 1.97x [1.90, 2.05] on openvino ACCEPT"), after one line per model for
    the baselines' own switch of runtime."""
    lines = ["where each variant pays (each judged against the baseline on the same runtime):"]
    groups: dict[tuple[Any, str, str], list[str]] = {}
    for cell in record["cells"]:
        place = (cell.get("target"), cell["model"], cell["variant"])
        switch = cell.get("runtime_switch")
        if cell.get("reference"):
            if switch:
                measured = (
                    speedup_text(switch.get("speedup")) + f" after {switch.get('pairs')} pairs"
                    if switch.get("speedup")
                    else f"not measured: {switch.get('error')}"
                )
                name = " ".join(str(part) for part in (cell.get("target"), cell["model"]) if part)
                lines.insert(
                    1,
                    f"  {name} baseline on {switch['to_backend']} vs on {switch['from_backend']}: {measured}"
                    " (switching runtime, the same file)",
                )
            continue
        verdict = cell.get("verdict") or {}
        decision = verdict.get("decision") or cell["status"]
        speed = speedup_text(cell.get("speedup")) if cell.get("speedup") else "no speedup"
        groups.setdefault(place, []).append(f"{speed} on {cell['backend']} {decision}")
    for (target, model, variant), parts in groups.items():
        name = " ".join(str(part) for part in (target, model, variant) if part)
        lines.append(f"  {name}: {', '.join(parts)}")
    return lines


def compare_table(record: dict[str, Any]) -> str:
    """kind, sparsity, size and MAC reductions, speedup [CI], decision: one row per point (and backend, when
    the sweep ran on several)."""
    rows = []
    several = len({point.get("backend") for point in record["compare"]["points"]}) > 1
    for point in record["compare"]["points"]:
        rows.append(
            [
                *([point.get("backend")] if several else []),
                f"candidate {point['recipe']}" if point["kind"] == "candidate" else point["kind"],
                f"{point['sparsity']:.0%}",
                f"{point['zipped_reduction']:.2f}x" if point["zipped_reduction"] else "-",
                f"{point['mac_reduction']:.2f}x" if point["mac_reduction"] else "-",
                speedup_text(point["speedup"]),
                point["decision"] or "-",
                " ".join(point["reasons"]),
            ]
        )
    headers = [
        *(["backend"] if several else []),
        *("kind", "sparsity", "zipped smaller", "MACs fewer", "speedup [CI]", "decision", "reasons"),
    ]
    return terminal_safe(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True, stralign="right"))


def record_report(record: dict[str, Any]) -> str:
    """`record_text` as a report file: ends with a newline."""
    return record_text(record) + "\n"


def search_rows(record: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """One row per measured trial of a search (repeats are counted, not listed): recipe, quality,
    speedup, what became of it, on the front."""
    from harness.search.front import SearchTrial, quality_text

    search = record["search"]
    front = set(search["front"])
    rows = []
    for item in search["trials"]:
        trial = SearchTrial.from_dict(item)
        if trial.repeat_of is not None:
            continue  # told what it was, not measured again: counted in the summary line
        rows.append(
            [
                trial.number,
                trial.recipe or "-",
                quality_text(trial),
                trial.speedup_text(),
                (trial.decision() or "-") if trial.state == "timed" else trial.state.replace("_", " "),
                " ".join(trial.reasons()),
                "*" if trial.number in front else "",
                f"{trial.duration_s:.0f}",
            ]
        )
    return ["#", "recipe", "quality", "speedup [CI]", "decision", "reasons", "front", "s"], rows


def search_text(record: dict[str, Any]) -> str:
    """A search's outcome: every trial, the Pareto front, and the best accepted recipe as lines to
    paste into `verify` and a gate config, with its kept artifact."""
    from harness.search.front import SearchTrial, quality_text

    search = record["search"]
    trials = [SearchTrial.from_dict(item) for item in search["trials"]]
    counts = search["counts"]
    target = (record.get("target") or {}).get("name") or "this host"
    stopped = {
        "budget": f"the budget ({search['budget_s']:g} s)",
        "trials": "the trial count",
        "space": "the space (every point of it was measured)",
        "interrupted": "an interrupt",
    }.get(search["stopped_by"], search["stopped_by"])
    base = search.get("baseline_quality_score")
    lines = [
        f"search of {search['model']} on {target}: "
        f"{counts['timed'] + counts['cut_by_quality'] + counts['failed']} points measured "
        f"({counts['timed']} timed, {counts['cut_by_quality']} cut by quality before timing, {counts['failed']} "
        f"failed; {counts['interrupted']} interrupted, {search.get('repeats', 0)} repeats drawn and not measured "
        f"again), stopped by {stopped}",
        f"space: {', '.join(search['space'])}; quality limit: "
        + (search.get("quality_limit") or f"max_accuracy_drop {search['max_accuracy_drop']:g}")
        + (
            (
                f" (baseline perplexity {-base:.2f})"
                if search.get("max_perplexity_increase")
                else f" (baseline quality {base:.4g})"
            )
            if base is not None
            else ""
        ),
        policy_line(record),
        "",
    ]
    headers, rows = search_rows(record)
    lines.append(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True, stralign="right"))
    lines.append("")
    by_number = {trial.number: trial for trial in trials}
    front = [by_number[number] for number in search["front"] if number in by_number]
    if front:
        lines.append("Pareto front (no other timed point is both faster, by its interval's lower end, and better):")
        lines += [
            f"  {trial.speedup_text()}  {quality_text(trial)}  {trial.decision()}  {trial.recipe}" for trial in front
        ]
        lines.append("")
    best = search.get("best")
    if best is None:
        lines.append("no point was accepted: see each trial's reasons above (verify prints the hints)")
    else:
        chosen = SearchTrial.from_dict(best)
        spec = record.get("model_source", {}).get("spec") or search["model"]
        target_option = f" --target {target}" if record.get("target") else ""
        lines += [
            f"best accepted: {chosen.recipe}: {chosen.speedup_text()}, {quality_text(chosen)}",
            f"  verify: speedproof verify {spec} --recipes {chosen.recipe}{target_option}",
            f'  gate:   recipes = ["{chosen.recipe}"]  required = ["{chosen.recipe}"]',
            f"  artifact: {chosen.artifact_path} (sha256 {chosen.sha256})",
        ]
    cut = [trial for trial in trials if trial.state == "cut_by_quality" and trial.repeat_of is None]
    if cut:
        lines += ["", "cut by quality (not timed):", *(f"  {trial.recipe}: {trial.cut_reason}" for trial in cut)]
    failed = [trial for trial in trials if trial.state == "failed" and trial.repeat_of is None]
    if failed:
        lines += ["", "failed:", *(f"  {trial.recipe}: {trial.error}" for trial in failed)]
    return terminal_safe("\n".join(lines))


def sensitivity_rows(record: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """One row per layer group, the most sensitive first: what pruning it alone costs."""
    section = record["sensitivity"]
    rows = []
    for layer in section["layers"]:
        coupled = len(layer["layers"]) - 1
        rows.append(
            [
                layer["rank"],
                layer["layer"] + (f" (+{coupled} coupled)" if coupled else ""),
                layer["channels"],
                f"{layer['accuracy']:.1%}",
                f"{layer['drop'] * 100:.1f}",
                f"{layer['params_kept']:.0%}",
                f"{layer['weighted_ratio']:.2f}",
                *([speedup_text(layer.get("speedup")), layer.get("decision") or "-"] if section["speed"] else []),
            ]
        )
    headers = ["rank", "layer group", "channels", "top-1 alone", "drop pts", "params kept", "weighted ratio"]
    return headers + (["speedup [CI]", "decision"] if section["speed"] else []), rows


def sensitivity_text(record: dict[str, Any]) -> str:
    section = record["sensitivity"]
    headers, rows = sensitivity_rows(record)
    lines = [
        f"sensitivity of {section['model']} to {section['recipe']}, one layer group at a time "
        f"(baseline top-1 {section['baseline_accuracy']:.1%} on {section['data']}):",
        "",
        tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True, stralign="right"),
        "",
        f"weighted ratio: what {section['recipe']}:layer_ratios=sensitivity prunes each group at (less where the "
        "drop is larger)",
    ]
    return terminal_safe("\n".join(lines))
