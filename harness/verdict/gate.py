"""The gate job: the CI release gate. A TOML config lists checks (model, recipes, the ones
that must be ACCEPTED, targets); each check is verified on every target this host can run, the
others are reported as skipped with the reason. Optionally compares against a stored record and
calls a speedup that fell beyond the policy's `max_regression` a regression.

Exit codes (decided here, in the record's `gate.exit_code`): 0 every required variant accepted and no regression;
1 a required variant rejected, a regression, nothing verified at all, or (with
`--require-all-targets`) a target skipped; 2 a usage or config error.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.models.sources import check_model_source
from harness.models.zoo import ZOO
from harness.progress import ProgressCallback, no_progress
from harness.recipes.grammar import parse_recipe_list
from harness.records.cells import NOT_MEASURED, CellKey, CellStatus, GatePlacement, VerdictCell
from harness.records.provenance import new_run_id
from harness.records.run_record import Record, RecordHeader, RunRecord
from harness.records.store import (
    MAX_LABEL_CHARS,
    check_writable_folder,
    kept_run_folder,
    load_record,
    safe_file_name,
    write_record,
)
from harness.variants.candidates import CandidateSpec, parse_candidates
from harness.variants.preparation import check_data_settings, prepare_variants
from harness.verdict.policy import Policy, apply_overrides, build_policy, check_policy_table, target_policy
from harness.verdict.reasons import Decision
from harness.verdict.regression import Regression, RegressionCheck, cell_identity, stored_verdict_cells
from harness.verdict.verify import VerifyContext, verify_prepared
from targets.errors import ConfigurationError, InputError, SpeedproofError, did_you_mean
from targets.host.fingerprint import HostFingerprint
from targets.inputs import InputSettings, shape_overrides
from targets.profiles import load_target, parse_backend_list, resolve_profile, with_backend
from targets.runners.agent import AgentRunner, RemoteError
from targets.runners.base import Runner
from targets.runners.choose import REMOTE_FORMS, check_remote, remote_runner
from targets.runners.cluster import cluster_remote
from targets.runners.cluster_worker import CLUSTER_SCHEME
from targets.runners.compatibility import default_target_name
from targets.runners.local import LocalRunner
from targets.runners.protocol import MeasurementProtocol
from targets.toml_files import read_toml_file

CHECK_KEYS = {
    "model": "any model source: zoo name, .onnx file or package.module:function",
    "recipes": "list of recipe strings to verify",
    "candidates": 'list of models compressed elsewhere: "PATH[=LABEL]" strings or {path = "...", label = "..."} '
    "tables (.onnx, .pt2 or package.module:function); relative paths are relative to this config's folder",
    "required": "list of recipes (from `recipes`) or candidate labels that must be ACCEPTED for the gate to pass",
    "targets": "list of target profiles (names or .toml paths); default: the one that suits the host",
    "input_shape": "shape of the input, e.g. [1, 3, 224, 224], or a list of NAME=1x3x224x224 strings",
    "backend": "which backend of each target measures: onnxruntime, openvino or torch, options as in --backend "
    '(e.g. "torch:mode=compile"); several, comma-separated ("onnxruntime,openvino"), judge each variant on each '
    "(a required one must pass on all); default: each target's first",
    "threads": "intra-op threads (default: the profile's)",
    "policy": "table: policy keys for this check only (over the config's [policy])",
    "remote": f"measure this check on another machine: {REMOTE_FORMS} (ssh: keys only, host key checked; "
    "default: the target profile's remote key, else this host)",
    "device": "with --cluster: only a worker started with --device TAG measures this check (h100, rpi5, ...)",
    "batch_axes": 'table: which dim of each input carries the batch, NAME = K or NAME = "none" (as --batch-axis)',
    "input_values": "table: inputs fed as constants, NAME = NUMBER (as --input-value)",
    "data": "your inputs (and labels): an .npz path or package.module:function (as --data)",
    "calibration_data": "inputs for int8-static calibration, in data's form (as --calibration-data)",
    "metric_fn": "your task metric, package.module:function (as --metric-fn; needs data)",
}
# a relative file path in a config (model, targets, candidates, data) is relative to the config's folder

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
    backend: str | None = None  # None: each target's first
    remote: str | None = None  # ssh://... : where this check is measured (None: the profile's remote, else here)
    device: str | None = None  # with --cluster: the device tag its worker must carry
    candidates: tuple[str, ...] = ()  # PATH=LABEL, paths resolved against the config's folder
    inputs: InputSettings = field(default_factory=InputSettings)

    @property
    def variant_names(self) -> tuple[str, ...]:
        """The recipes, then the candidates' labels: every variant the check verifies."""
        return (*self.recipes, *(CandidateSpec.parse(text).label for text in self.candidates))


@dataclass(frozen=True)
class GateConfig:
    path: Path
    checks: tuple[GateCheck, ...]
    policy: dict[str, Any]


def _string_list(value: Any, where: str, path: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigurationError(f"{path}: {where} must be a list of strings, got {value!r}")
    return tuple(value)


def _input_shapes(value: Any, where: str, path: Path) -> tuple[str, ...]:
    expected = 'expected a list of positive integers like [1, 3, 224, 224] or a list of "NAME=1x3x224x224" strings'
    if isinstance(value, list) and value and all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        if any(dim <= 0 for dim in value):
            raise ConfigurationError(f"{path}: {where} = {value!r}: every dim must be a positive integer; {expected}")
        shapes: tuple[str, ...] = ("x".join(str(dim) for dim in value),)
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        shapes = tuple(value)
    else:
        raise ConfigurationError(f"{path}: {where} = {value!r}; {expected}")
    try:
        shape_overrides(list(shapes))
    except SpeedproofError as error:
        raise ConfigurationError(f"{path}: {where}: {str(error).removeprefix('--input-shape ')}") from None
    return shapes


def _parse_check(table: Any, index: int, path: Path) -> GateCheck:
    where = f"check[{index}]"
    if not isinstance(table, dict):
        raise ConfigurationError(f"{path}: {where} must be a [[check]] table")
    for key in table:
        if key not in CHECK_KEYS:
            raise ConfigurationError(
                f"{path}: unknown key {key!r} in {where}{did_you_mean(key, CHECK_KEYS)}; valid keys: "
                + ", ".join(CHECK_KEYS)
            )
    if not isinstance(table.get("model"), str) or not table["model"]:
        raise ConfigurationError(f"{path}: {where}.model is missing; {CHECK_KEYS['model']}")
    recipes = _string_list(table.get("recipes", []), f"{where}.recipes", path)
    candidates = _candidate_texts(table.get("candidates", []), f"{where}.candidates", path)
    if not recipes and not candidates:
        raise ConfigurationError(
            f'{path}: {where}.recipes is missing or empty; e.g. recipes = ["structured:0.5"] (or give candidates)'
        )
    try:
        parsed = parse_recipe_list(recipes)
    except SpeedproofError as error:
        raise ConfigurationError(f"{path}: {where}.recipes: {error}") from None
    if len(parsed) < 2 and not candidates:
        raise ConfigurationError(f"{path}: {where}.recipes names nothing to verify besides the baseline")
    try:
        labels = [candidate.label for candidate in parse_candidates(candidates, [recipe.text for recipe in parsed])]
    except SpeedproofError as error:
        raise ConfigurationError(f"{path}: {where}.candidates: {error}") from None
    inputs = _input_settings(table, where, path)
    required = _string_list(table.get("required", []), f"{where}.required", path)
    for name in required:
        if name not in recipes and name not in labels:
            names = [*recipes, *labels]
            raise ConfigurationError(
                f"{path}: {where}.required names {name!r}{did_you_mean(name, names)}, which is not in its "
                f"recipes or candidates ({', '.join(names)})"
            )
    targets: tuple[str | None, ...] = tuple(
        config_relative(target, path, f"{where}.targets") if target.endswith(".toml") else target
        for target in _string_list(table.get("targets", []), f"{where}.targets", path)
    ) or (None,)
    backend = table.get("backend")
    if backend is not None and not isinstance(backend, str):
        raise ConfigurationError(f'{path}: {where}.backend = {backend!r}; expected a backend name like "torch"')
    for target in targets:
        try:
            if target is not None:
                with_backend(load_target(target), backend)
            elif backend is not None:  # the default target is known only when the check runs: names and options
                parse_backend_list(backend)
        except SpeedproofError as error:
            key = "targets" if target is not None else "backend"
            raise ConfigurationError(f"{path}: {where}.{key}: {error}") from None
    remote = table.get("remote")
    if remote is not None:
        if not isinstance(remote, str):
            raise ConfigurationError(f"{path}: {where}.remote = {remote!r}; expected {CHECK_KEYS['remote']}")
        try:
            check_remote(remote)
        except SpeedproofError as error:
            raise ConfigurationError(f"{path}: {where}.remote: {error}") from None
    device = table.get("device")
    if device is not None and (not isinstance(device, str) or not device):
        raise ConfigurationError(f'{path}: {where}.device = {device!r}; expected a device tag like "h100"')
    threads = table.get("threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ConfigurationError(f"{path}: {where}.threads = {threads!r}; expected a positive integer")
    policy = check_policy_table(table.get("policy", {}), f"{path} {where}.policy")
    apply_overrides(build_policy(), policy, f"{path} {where}.policy")  # values out of range, named here
    input_shapes = _input_shapes(table["input_shape"], f"{where}.input_shape", path) if "input_shape" in table else ()
    model = table["model"]
    if model.endswith((".onnx", ".pt2", ".pt", ".pth")):
        model = config_relative(model, path, f"{where}.model")
    try:
        check_model_source(model)
    except SpeedproofError as error:
        raise ConfigurationError(f"{path}: {where}.model: {error}") from None
    return GateCheck(
        model=model,
        recipes=recipes,
        required=required,
        targets=targets,
        input_shapes=input_shapes,
        threads=threads,
        policy=policy,
        backend=backend,
        remote=remote,
        device=device,
        candidates=candidates,
        inputs=inputs,
    )


def _candidate_texts(value: Any, where: str, path: Path) -> tuple[str, ...]:
    """Each candidate as PATH=LABEL, a relative file path made relative to the config's folder."""
    if not isinstance(value, list):
        raise ConfigurationError(f'{path}: {where} must be a list, e.g. candidates = ["model_int8.onnx=int8"]')
    texts = []
    for position, item in enumerate(value):
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"path", "label"})
            if unknown or not isinstance(item.get("path"), str) or not isinstance(item.get("label", ""), str):
                raise ConfigurationError(
                    f'{path}: {where}[{position}] = {item!r}; expected {{path = "model_int8.onnx", label = "int8"}}'
                )
            source = item["path"]
            label = item.get("label") or CandidateSpec.parse_unchecked(source).label
        elif isinstance(item, str):
            spec = CandidateSpec.parse_unchecked(item)
            source, label = spec.source, spec.label
        else:
            raise ConfigurationError(f'{path}: {where}[{position}] = {item!r}; expected "PATH[=LABEL]" or a table')
        if label and ("/" in label or "=" in label):
            raise ConfigurationError(
                f"{path}: {where}[{position}]: the label {label!r} holds '/' or '=', which a label may not (they "
                "separate a path from its label); name it without them"
            )
        if ":" not in source and source not in ZOO:  # a file (whatever its suffix): beside the config
            source = config_relative(source, path, f"{where}[{position}]")
        texts.append(
            f"{source}={label or CandidateSpec.parse_unchecked(item if isinstance(item, str) else source).label}"
        )
    return tuple(texts)


def _input_settings(table: dict[str, Any], where: str, path: Path) -> InputSettings:
    axes, values = table.get("batch_axes", {}), table.get("input_values", {})
    if not isinstance(axes, dict) or not all(
        isinstance(axis, str) and axis == "none" or isinstance(axis, int) and not isinstance(axis, bool)
        for axis in axes.values()
    ):
        raise ConfigurationError(
            f'{path}: {where}.batch_axes = {axes!r}; expected a table like {{state = 1, sr = "none"}}'
        )
    if not isinstance(values, dict) or not all(
        isinstance(value, (int, float)) and not isinstance(value, bool) for value in values.values()
    ):
        raise ConfigurationError(f"{path}: {where}.input_values = {values!r}; expected a table like {{sr = 16000}}")
    sources: dict[str, str | None] = {}
    for key in ("data", "calibration_data", "metric_fn"):
        value = table.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigurationError(f"{path}: {where}.{key} = {value!r}; expected {CHECK_KEYS[key]}")
        if value is not None and key != "metric_fn" and value.endswith(".npz"):
            value = config_relative(value, path, f"{where}.{key}")
        sources[key] = value
    settings = InputSettings(
        batch_axes=tuple(f"{name}={axis}" for name, axis in axes.items()),
        input_values=tuple(f"{name}={value}" for name, value in values.items()),
        data=sources["data"],
        calibration_data=sources["calibration_data"],
        metric_fn=sources["metric_fn"],
    )
    try:
        settings.check()
        check_data_settings(settings)
    except SpeedproofError as error:
        raise ConfigurationError(f"{path}: {where}: {error}") from None
    return settings


def config_relative(text: str, config: Path, where: str) -> str:
    """A file path of the config, relative to the config's folder (absolute stays as it is). A path
    found only relative to the current folder, as configs were read before, is an error saying so."""
    if Path(text).is_absolute():
        return text
    beside = config.parent / text
    if not beside.exists() and Path(text).exists():
        raise ConfigurationError(
            f"{config}: {where} = {text!r}: relative paths in a gate config are relative to the config's folder "
            f"({config.parent}), and there is no {beside}; {text} exists relative to the current folder: write "
            "the path relative to the config, or absolute"
        )
    return str(beside)


def load_gate_config(path: Path) -> GateConfig:
    """Parse and validate the whole config before anything is measured."""
    return parse_gate_config(read_toml_file(path, "gate config"), path)


def parse_gate_config(data: dict[str, Any], path: Path) -> GateConfig:
    """Validate a parsed config; every error names `path`, the table and the key."""
    for key in data:
        if key not in TOP_KEYS:
            raise ConfigurationError(
                f"{path}: unknown top-level key {key!r}{did_you_mean(key, TOP_KEYS)}; valid: [[check]], [policy]"
            )
    checks_data = data.get("check")
    if not isinstance(checks_data, list) or not checks_data:
        raise ConfigurationError(f'{path}: no [[check]] tables; add one with model = "..." and recipes = [...]')
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
    ssh_config: Path | None = None  # for checks measured over SSH (ssh -F)
    cluster: str | None = None  # tcp://scheduler:port: every check is measured by a worker of this Dask cluster


def run_gate(
    request: GateRequest, progress: ProgressCallback = no_progress, runner: Runner | None = None
) -> tuple[Record, Path]:
    """Verify every check on every target it names; write and return the record (its `gate`
    entry holds skips, regressions and the exit code)."""
    config = load_gate_config(request.config_path)
    if request.cluster:
        _check_cluster_config(config)
    check_writable_folder(request.out_dir)
    here = runner or LocalRunner()
    host = here.fingerprint()
    stored = _load_baseline(request, host) if request.baseline_record else None
    run_id = new_run_id()
    kept = kept_run_folder(request.out_dir, "gate", run_id)
    remotes: dict[tuple[str, str | None], Runner] = {}

    def runner_of(check: GateCheck, target_name: str | None) -> Runner:
        """Where a check runs on a target: the injected runner, else its remote (the check's, then a
        worker of --cluster, then the profile's), else this host; one runner per remote and target, so
        a board is asked once and a cluster's target keeps one worker for the whole gate."""
        remote = check.remote
        if remote is None and request.cluster:
            remote = cluster_remote(request.cluster, check.device)
        if remote is None and target_name:
            remote = load_target(target_name).remote
        if runner is not None or remote is None:
            return here
        key = (remote, target_name if remote.startswith(CLUSTER_SCHEME) else None)
        if key not in remotes:
            remotes[key] = remote_runner(remote, request.ssh_config, target_name, progress)
        return remotes[key]

    planned = [
        _plan_check_on_target(index, check, target_name, config, request, runner_of(check, target_name), progress, kept)
        for index, check in enumerate(config.checks)
        for target_name in check.targets
    ]
    runs = _measure_per_device(planned)
    policies = {f"check {run.check} on {run.target}": run.policy.as_dict() for run in runs if run.policy is not None}
    regressions = _regressions(runs, stored) if stored else []
    gate = {
        "config": str(request.config_path),
        "checks": len(config.checks),
        "skipped": [run.skip for run in runs if run.skip],
        "regressions": [regression.as_dict() for regression in regressions],
        "baseline_record": str(request.baseline_record) if request.baseline_record else None,
        "require_all_targets": request.require_all_targets,
    }
    record = (
        RunRecord(
            header=RecordHeader.new("gate", host, None, run_id),
            policy=next(iter(policies.values()), build_policy(cli_overrides=request.policy_overrides).as_dict()),
            policies=policies,
            protocol=request.protocol.as_dict(),
            artifact_dir=str(kept.resolve()),
            cells=tuple(cell for run in runs for cell in run.cells),
        )
        .with_section("gate", gate)
        .as_dict()
    )
    record["gate"]["failures"] = gate_failures(record)
    record["gate"]["exit_code"] = 1 if record["gate"]["failures"] else 0
    path = write_record(record, request.out_dir, label="gate")
    return record, path


@dataclass(frozen=True)
class CheckRun:
    """One check on one target: its cells, the policy it was verified under (None when skipped),
    and why it was skipped."""

    check: int
    target: str
    cells: list[VerdictCell]
    policy: Policy | None = None
    skip: dict[str, Any] | None = None


def _check_cluster_config(config: GateConfig) -> None:
    """Under --cluster every check names its targets: a worker is chosen by the target it serves."""
    for index, check in enumerate(config.checks):
        if check.targets == (None,) and check.remote is None:
            raise ConfigurationError(
                f"{config.path}: check[{index}] names no targets; with --cluster each check needs "
                'targets = ["x86-cpu", ...] (the workers\' --target)'
            )


@dataclass(frozen=True)
class PlannedCheck:
    """A check on a target whose variants are built and whose A/B pairs are still to be measured."""

    runner: Runner
    measure: Callable[[], CheckRun]


def _measure_per_device(planned: list[CheckRun | PlannedCheck]) -> list[CheckRun]:
    """Measure the planned checks, in order per device, and the devices at the same time (boards and
    cluster workers are separate machines: a fleet's gate takes as long as its busiest device). Every
    runner that measures on this host's CPUs (this host, an emulated board) is one device: they take
    turns. With one device this is a plain loop."""
    by_device: dict[int | str, list[int]] = {}
    for position, item in enumerate(planned):
        if isinstance(item, PlannedCheck):
            device = "this host" if item.runner.shares_this_host else id(item.runner)
            by_device.setdefault(device, []).append(position)
    results: dict[int, CheckRun] = {
        position: item for position, item in enumerate(planned) if isinstance(item, CheckRun)
    }

    def measure_device(positions: list[int]) -> None:
        for position in positions:
            item = planned[position]
            assert isinstance(item, PlannedCheck)
            results[position] = item.measure()

    if len(by_device) <= 1:
        for positions in by_device.values():
            measure_device(positions)
    else:
        with ThreadPoolExecutor(max_workers=len(by_device), thread_name_prefix="speedproof-device") as pool:
            for future in [pool.submit(measure_device, positions) for positions in by_device.values()]:
                future.result()
    return [results[position] for position in range(len(planned))]


def _plan_check_on_target(
    index: int,
    check: GateCheck,
    target_name: str | None,
    config: GateConfig,
    request: GateRequest,
    runner: Runner,
    progress: ProgressCallback,
    kept: Path,
) -> CheckRun | PlannedCheck:
    """Build one check's variants for one target (artifacts kept in `kept/check-<index>-<target>`);
    what is left is measuring them. A check that is skipped or whose source fails is done here."""
    remote = runner.label if isinstance(runner, AgentRunner) else None
    measured_on: dict[str, Any] | None = None
    try:
        host = runner.fingerprint()
        remote = runner.label if isinstance(runner, AgentRunner) else None  # a cluster's names its worker now
        measured_on = host.as_dict() if remote else None
        profile = with_backend(load_target(target_name or default_target_name(host, runner.can_run)), check.backend)
        reasons = runner.can_run(profile)
    except RemoteError as error:  # an unreachable board: its cells are skipped with the reason
        profile = with_backend(load_target(target_name or "x86-cpu"), check.backend)
        reasons = [str(error)]

    def placement(recipe: str) -> GatePlacement:
        return GatePlacement(
            check=index, target=profile.name, required=recipe in check.required, remote=remote, host=measured_on
        )

    if reasons:
        progress(f"check {index} {check.model} on {profile.name}: skipped ({'; '.join(reasons)})")
        why = f"target {profile.name} cannot run here: {'; '.join(reasons)}"
        return CheckRun(
            index,
            profile.name,
            [
                VerdictCell.skipped(CellKey(check.model, recipe, NOT_MEASURED, NOT_MEASURED), why, placement(recipe))
                for recipe in check.variant_names
            ],
            skip={"check": index, "model": check.model, "target": profile.name, "reason": "; ".join(reasons)},
        )
    resolved = resolve_profile(profile, host, check.threads, runner.available_cpus())
    policy = target_policy(
        resolved.profile,
        cli_overrides={**check.policy, **{k: v for k, v in request.policy_overrides.items() if v is not None}},
        file_overrides=config.policy,
        file_label=f"{config.path} [policy]",
    )
    where = f"check {index} on {profile.name}" + (f" @ {remote}" if remote else "")
    context = VerifyContext(  # devices measure at the same time: each line says which check it is about
        resolved, policy, runner, request.protocol, progress=lambda line: progress(f"{where}: {line.strip()}")
    )
    progress(f"check {index}: {check.model} on {profile.name}")
    work_dir = kept / safe_file_name(f"check-{index}-{profile.name}", MAX_LABEL_CHARS)
    try:
        prepared = prepare_variants(
            check.model,
            check.recipes,
            check.input_shapes,
            resolved,
            runner,
            work_dir,
            progress,
            candidate_texts=check.candidates,
            inputs=check.inputs,
        )
    except SpeedproofError as error:
        # one check's source failing (a missing file, an unresolvable shape) fails that check only
        failed = [
            VerdictCell.failed(
                CellKey(check.model, recipe, NOT_MEASURED, policy.schedule.batch_size),
                str(error),
                reference=recipe == "baseline",
                placement=placement(recipe),
            )
            for recipe in ("baseline", *check.variant_names)
        ]
        return CheckRun(index, profile.name, failed, policy)

    def measure() -> CheckRun:
        cells = verify_prepared(prepared, context)
        return CheckRun(index, profile.name, [cell.placed(placement(cell.key.variant)) for cell in cells], policy)

    return PlannedCheck(runner, measure)


def gate_failures(record: dict[str, Any]) -> list[str]:
    """Why the gate fails, one sentence each; empty when it passes."""
    failures: list[str] = []
    gate = record["gate"]
    # a check whose baseline failed could not run at all: one failure for it, not one per variant
    could_not_run = {
        (cell["check"], cell["target"]): cell.get("error") or "?"
        for cell in record["cells"]
        if cell.get("reference") and cell["status"] == CellStatus.FAILED
    }
    failures.extend(
        f"check {check} on {target} could not run: {error}" for (check, target), error in could_not_run.items()
    )
    for cell in record["cells"]:
        if (cell.get("check"), cell.get("target")) in could_not_run or cell.get("reference"):
            continue
        verdict = cell.get("verdict") or {}
        on = cell["target"] + (f" @ {cell['remote']}" if cell.get("remote") else "")  # which device, in a fleet
        if len({other.get("backend") for other in record["cells"] if not other.get("skipped")}) > 1:
            on += f" ({cell['backend']})"
        if cell.get("required") and not cell.get("skipped") and verdict.get("decision") != Decision.ACCEPT:
            codes = " ".join(reason["code"] for reason in verdict.get("reasons", [])) or cell.get("error") or "?"
            why = f" ({cell['error']})" if cell["status"] == CellStatus.FAILED and cell.get("error") else ""
            failures.append(f"required {cell['model']} {cell['variant']} on {on} was rejected: {codes}{why}")
        elif cell["status"] == CellStatus.FAILED:
            failures.append(f"{cell['model']} {cell['variant']} on {on} failed: {cell.get('error')}")
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
        raise InputError(
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
        raise InputError(
            f"{request.baseline_record} was measured on another host ({', '.join(map(str, stored_identity))}); "
            f"this host is {', '.join(host.identity())}. Speedups from different machines are not comparable; "
            "pass --allow-other-host to compare anyway"
        )
    return stored


def _regressions(runs: list[CheckRun], stored: dict[str, Any]) -> list[Regression]:
    """Cells of this run that regressed against the stored record, each judged under the policy
    of its own check and target."""
    stored_cells = stored_verdict_cells(stored)
    regressions = []
    for run in runs:
        if run.policy is None:
            continue
        check = RegressionCheck(run.policy.rules.max_regression)
        for cell in run.cells:
            now = cell.as_dict()
            before = stored_cells.get(cell_identity(now, run.target))
            if before is not None:
                found = check.check(f"{now['model']} {now['variant']} on {run.target}", before, now)
                if found is not None:
                    regressions.append(found)
    return regressions
