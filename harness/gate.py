"""`speedproof gate`: the CI release gate. A TOML config lists checks (model, recipes, the ones
that must be ACCEPTED, targets); each check is verified on every target this host can run, the
others are reported as skipped with the reason. Optionally compares against a stored record and
calls a speedup that fell beyond the policy's `max_regression` a regression.

Exit codes (decided in `gate_exit_code`): 0 every required variant accepted and no regression;
1 a required variant rejected, a regression, nothing verified at all, or (with
`--require-all-targets`) a target skipped; 2 a usage or config error.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import SpeedproofError, did_you_mean
from harness.policy import apply_overrides, build_policy, check_policy_table, read_toml_file
from harness.protocol import MeasurementProtocol
from harness.provenance import new_run_id, record_header
from harness.recipes import parse_recipe_list
from harness.results_store import Record, load_record, write_record
from harness.variants_run import prepare_variants
from harness.verify import ProgressCallback, VerifyContext, no_progress, verify_prepared
from targets.compatibility import reasons_host_cannot_run
from targets.host import HostFingerprint, fingerprint_host
from targets.profiles import load_target, resolve_profile

CHECK_KEYS = {
    "model": "any model source: zoo name, .onnx file or package.module:function",
    "recipes": "list of recipe strings to verify",
    "required": "list of recipes (from `recipes`) that must be ACCEPTED for the gate to pass",
    "targets": "list of target profiles (names or .toml paths); default: the one that suits the host",
    "input_shape": "shape of the input, e.g. [1, 3, 224, 224], or a list of NAME=1x3x224x224 strings",
    "threads": "intra-op threads (default: the profile's)",
    "policy": "table: policy keys for this check only (over the config's [policy])",
}
TOP_KEYS = {"check": "array of [[check]] tables", "policy": "table: the policy for every check"}


@dataclass(frozen=True)
class GateCheck:
    model: str
    recipes: tuple[str, ...]
    required: tuple[str, ...]
    targets: tuple[str | None, ...]
    input_shapes: tuple[str, ...] = ()
    threads: int | None = None
    policy: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateConfig:
    path: Path
    checks: tuple[GateCheck, ...]
    policy: dict[str, Any]


def _string_list(value: Any, where: str, path: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SpeedproofError(f"{path}: {where} must be a list of strings, got {value!r}")
    return tuple(value)


def _input_shapes(value: Any, where: str, path: Path) -> tuple[str, ...]:
    if isinstance(value, list) and value and all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        return ("x".join(str(dim) for dim in value),)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise SpeedproofError(
        f"{path}: {where} = {value!r}; expected a list of integers like [1, 3, 224, 224] or a list of "
        '"NAME=1x3x224x224" strings'
    )


def _parse_check(table: Any, index: int, path: Path) -> GateCheck:
    where = f"check[{index}]"
    if not isinstance(table, dict):
        raise SpeedproofError(f"{path}: {where} must be a [[check]] table")
    for key in table:
        if key not in CHECK_KEYS:
            raise SpeedproofError(
                f"{path}: unknown key {key!r} in {where}{did_you_mean(key, CHECK_KEYS)}; valid keys: "
                + ", ".join(CHECK_KEYS)
            )
    if not isinstance(table.get("model"), str) or not table["model"]:
        raise SpeedproofError(f"{path}: {where}.model is missing; {CHECK_KEYS['model']}")
    recipes = _string_list(table.get("recipes", []), f"{where}.recipes", path)
    if not recipes:
        raise SpeedproofError(f'{path}: {where}.recipes is missing or empty; e.g. recipes = ["structured:0.5"]')
    try:
        parse_recipe_list(recipes)
    except SpeedproofError as error:
        raise SpeedproofError(f"{path}: {where}.recipes: {error}") from None
    required = _string_list(table.get("required", []), f"{where}.required", path)
    for name in required:
        if name not in recipes:
            raise SpeedproofError(
                f"{path}: {where}.required names {name!r}{did_you_mean(name, recipes)}, which is not in its "
                f"recipes ({', '.join(recipes)})"
            )
    targets: tuple[str | None, ...] = _string_list(table.get("targets", []), f"{where}.targets", path) or (None,)
    for target in targets:
        if target is not None:
            try:
                load_target(target)
            except SpeedproofError as error:
                raise SpeedproofError(f"{path}: {where}.targets: {error}") from None
    threads = table.get("threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise SpeedproofError(f"{path}: {where}.threads = {threads!r}; expected a positive integer")
    policy = check_policy_table(table.get("policy", {}), f"{path} {where}.policy")
    return GateCheck(
        model=table["model"],
        recipes=recipes,
        required=required,
        targets=targets,
        input_shapes=(
            _input_shapes(table["input_shape"], f"{where}.input_shape", path) if "input_shape" in table else ()
        ),
        threads=threads,
        policy=policy,
    )


def load_gate_config(path: Path) -> GateConfig:
    """Parse and validate the whole config before anything is measured."""
    data = read_toml_file(path, "gate config")
    for key in data:
        if key not in TOP_KEYS:
            raise SpeedproofError(
                f"{path}: unknown top-level key {key!r}{did_you_mean(key, TOP_KEYS)}; valid: [[check]], [policy]"
            )
    checks_data = data.get("check")
    if not isinstance(checks_data, list) or not checks_data:
        raise SpeedproofError(f'{path}: no [[check]] tables; add one with model = "..." and recipes = [...]')
    policy = check_policy_table(data.get("policy", {}), f"{path} [policy]")
    apply_overrides(build_policy(), policy, f"{path} [policy]")
    checks = tuple(_parse_check(table, index, path) for index, table in enumerate(checks_data))
    return GateConfig(path=path, checks=checks, policy=policy)


@dataclass(frozen=True)
class GateRequest:
    config_path: Path
    out_dir: Path = Path("results")
    baseline_record: Path | None = None
    allow_other_host: bool = False
    require_all_targets: bool = False
    policy_overrides: dict[str, Any] = field(default_factory=dict)
    protocol: MeasurementProtocol = field(default_factory=MeasurementProtocol)


def run_gate(
    request: GateRequest, progress: ProgressCallback = no_progress, host: HostFingerprint | None = None
) -> tuple[Record, Path]:
    """Verify every check on every target it names; write and return the record (its `gate`
    entry holds skips, regressions and the exit code)."""
    config = load_gate_config(request.config_path)
    host = host or fingerprint_host()
    stored = _load_baseline(request, host) if request.baseline_record else None
    run_id = new_run_id()
    cells: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    policies: dict[str, dict[str, Any]] = {}
    for index, check in enumerate(config.checks):
        for target_name in check.targets:
            cells_here, skip = _run_check_on_target(index, check, target_name, config, request, host, progress)
            if skip:
                skipped.append(skip)
            cells.extend(cells_here)
    regressions = _regressions(cells, stored) if stored else []
    for cell in cells:
        policy_used = cell.pop("_policy")
        if policy_used:
            policies.setdefault(f"check {cell['check']} on {cell['target']}", policy_used)
    record: Record = {
        **record_header("gate", host, None, run_id),
        "policy": next(iter(policies.values()), build_policy(None, None, request.policy_overrides).as_dict()),
        "policies": policies,
        "protocol": request.protocol.as_dict(),
        "cells": cells,
        "gate": {
            "config": str(request.config_path),
            "checks": len(config.checks),
            "skipped": skipped,
            "regressions": regressions,
            "baseline_record": str(request.baseline_record) if request.baseline_record else None,
            "require_all_targets": request.require_all_targets,
        },
    }
    record["gate"]["failures"] = gate_failures(record)
    record["gate"]["exit_code"] = 1 if record["gate"]["failures"] else 0
    path = write_record(record, request.out_dir, label="gate")
    return record, path


def _run_check_on_target(
    index: int,
    check: GateCheck,
    target_name: str | None,
    config: GateConfig,
    request: GateRequest,
    host: HostFingerprint,
    progress: ProgressCallback,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    from targets.compatibility import default_target_name

    profile = load_target(target_name or default_target_name(host))
    reasons = reasons_host_cannot_run(profile, host)
    if reasons:
        progress(f"check {index} {check.model} on {profile.name}: skipped ({'; '.join(reasons)})")
        skip = {"check": index, "model": check.model, "target": profile.name, "reason": "; ".join(reasons)}
        cells: list[dict[str, Any]] = [
            {
                "check": index,
                "target": profile.name,
                "model": check.model,
                "variant": recipe,
                "backend": "-",
                "batch_size": "-",
                "status": "skipped",
                "skipped": f"target {profile.name} cannot run here: {'; '.join(reasons)}",
                "required": recipe in check.required,
                "verdict": None,
                "_policy": {},
            }
            for recipe in check.recipes
        ]
        return cells, skip
    resolved = resolve_profile(profile, host, check.threads)
    policy = build_policy(
        resolved.profile.policy,
        cli_overrides={**check.policy, **{k: v for k, v in request.policy_overrides.items() if v is not None}},
        file_overrides=config.policy,
        file_label=f"{config.path} [policy]",
    )
    context = VerifyContext(resolved, policy, host, request.protocol, progress=progress)
    progress(f"check {index}: {check.model} on {profile.name}")
    with tempfile.TemporaryDirectory(prefix="speedproof-gate-") as work_dir:
        try:
            prepared = prepare_variants(
                check.model, check.recipes, check.input_shapes, resolved, Path(work_dir), progress
            )
        except SpeedproofError as error:
            # one check's source failing (a missing file, an unresolvable shape) fails that check only
            return [
                _failed_check_cell(index, check, profile.name, recipe, str(error), policy)
                for recipe in ("baseline", *check.recipes)
            ], None
        cells = verify_prepared(prepared, context)
    for cell in cells:
        cell.update(
            check=index, target=profile.name, required=cell["variant"] in check.required, _policy=policy.as_dict()
        )
    return cells, None


def _failed_check_cell(
    index: int, check: GateCheck, target: str, recipe: str, error: str, policy: Any
) -> dict[str, Any]:
    reference = recipe == "baseline"
    return {
        "check": index,
        "target": target,
        "model": check.model,
        "variant": recipe,
        "backend": "-",
        "batch_size": policy.batch_size,
        "status": "failed",
        "error": error,
        "reference": reference,
        "required": recipe in check.required,
        "verdict": None
        if reference
        else {
            "decision": "REJECT",
            "reasons": [{"code": "FAILED", "message": error}],
            "hints": [],
            "notes": [],
            "realization": None,
        },
        "_policy": policy.as_dict(),
    }


def gate_failures(record: dict[str, Any]) -> list[str]:
    """Why the gate fails, one sentence each; empty when it passes."""
    failures = []
    gate = record["gate"]
    for cell in record["cells"]:
        verdict = cell.get("verdict") or {}
        if cell.get("required") and not cell.get("skipped") and verdict.get("decision") != "ACCEPT":
            codes = " ".join(reason["code"] for reason in verdict.get("reasons", [])) or cell.get("error") or "?"
            failures.append(f"required {cell['model']} {cell['variant']} on {cell['target']} was rejected: {codes}")
    failures.extend(f"regression: {item['message']}" for item in gate["regressions"])
    if gate["require_all_targets"]:
        failures.extend(
            f"--require-all-targets: {item['model']} on {item['target']} was skipped: {item['reason']}"
            for item in gate["skipped"]
        )
    if not any(not cell.get("skipped") for cell in record["cells"]):
        failures.append("nothing was verified: every check's targets were skipped on this host")
    return failures


def _load_baseline(request: GateRequest, host: HostFingerprint) -> dict[str, Any]:
    assert request.baseline_record is not None
    stored = load_record(request.baseline_record)
    if stored.get("command") not in ("gate", "verify"):
        raise SpeedproofError(
            f"{request.baseline_record}: a {stored.get('command')!r} record has no verdicts; --baseline needs a "
            "record written by `speedproof gate` or `speedproof verify`"
        )
    stored_host = stored.get("host") or {}
    stored_identity = (
        stored_host.get("isa"),
        stored_host.get("cpu_model"),
        str(stored_host.get("logical_cores")),
        *(gpu.get("name") for gpu in stored_host.get("gpus", [])),
    )
    if stored_identity != host.identity() and not request.allow_other_host:
        raise SpeedproofError(
            f"{request.baseline_record} was measured on another host ({', '.join(map(str, stored_identity))}); "
            f"this host is {', '.join(host.identity())}. Speedups from different machines are not comparable; "
            "pass --allow-other-host to compare anyway"
        )
    return stored


def _regressions(cells: list[dict[str, Any]], stored: dict[str, Any]) -> list[dict[str, Any]]:
    """Cells whose speedup fell beyond `max_regression` below the stored one, or that the stored
    record accepted and this run rejects."""
    default_target = (stored.get("target") or {}).get("name")

    def key(cell: dict[str, Any], target: str | None) -> tuple[Any, ...]:
        return (target, cell["model"], cell["variant"], cell.get("batch_size"))

    stored_cells = {
        key(cell, cell.get("target") or default_target): cell
        for cell in stored.get("cells", [])
        if cell.get("verdict") and cell.get("speedup")
    }
    regressions = []
    for cell in cells:
        before = stored_cells.get(key(cell, cell.get("target")))
        now_speedup, verdict = cell.get("speedup"), cell.get("verdict") or {}
        if before is None or not now_speedup:
            continue
        where = f"{cell['model']} {cell['variant']} on {cell['target']}"
        tolerance = (cell.get("_policy") or {}).get("max_regression")
        tolerance = 0.05 if tolerance is None else tolerance
        floor = before["speedup"]["ratio"] * (1.0 - tolerance)
        if before["verdict"]["decision"] == "ACCEPT" and verdict.get("decision") != "ACCEPT":
            regressions.append(
                {"cell": where, "message": f"{where} was ACCEPTED in the baseline record and is now REJECTED"}
            )
        elif now_speedup["ci_high"] < floor:
            regressions.append(
                {
                    "cell": where,
                    "message": f"{where}: speedup {now_speedup['ratio']:.2f}x [{now_speedup['ci_low']:.2f}, "
                    f"{now_speedup['ci_high']:.2f}] is below the stored {before['speedup']['ratio']:.2f}x by more "
                    f"than max_regression = {tolerance:.0%}",
                }
            )
    return regressions
