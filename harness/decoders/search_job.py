"""The decoder search job (`speedproof search` on a decoder): explore decoder recipes (int4 and int8 block sizes and
accuracy levels, dropped layers and pruned widths with or without recovery and int4 after them) with optuna's TPE
sampler on two objectives, the lower end of the judged phase's speedup interval (time per token by default) and
the perplexity (fidelity for a random-weight decoder, reported, not judged), and keep the fastest point the policy
ACCEPTs.

The points are built and measured in rounds: one contained process builds every point of a round (the model
builder's imports are paid once), one measures their quality from their ONNX decoders, and a point past the
perplexity limit is cut there, never timed. The others are A/B-timed on the judged phase alone, as `verify` times
it (same workers, block interval, stopping rule and verdict); the phases the policy does not judge are left to a
`verify` of the chosen recipe. The budget is honoured: a point whose family's longest trial so far would run past
it is not started, and no pair runs past what is left. Only the front's and the best point's folders are kept;
every trial's folder hash is in the record.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.decoders.build import DecoderBuildPlan, build_decoders, has_training_text, plan_for
from harness.decoders.job import (
    DECODER_BACKEND,
    DECODER_PROTOCOL,
    DecoderRun,
    DecoderVariant,
    decoder_evidence,
    decoder_target,
    folder_name,
    verify_decoder_variant,
    verify_decoder_variants,
)
from harness.decoders.quality import QualityText, measure_quality, quality_text
from harness.decoders.scenario import DecoderScenario, prompt_token_ids
from harness.decoders.search_space import (
    FAMILY_PARAMETER,
    DecoderSpace,
    decoder_families,
    decoder_space,
    first_decoder_points,
    next_decoder_points,
    suggest_decoder_recipe,
)
from harness.decoders.sources import DecoderSource, prompt_fits, resolve_decoder_source
from harness.measure.schedule import DECODER_METRICS
from harness.progress import ProgressCallback, no_progress
from harness.recipes.grammar import parse_recipe
from harness.records.provenance import new_run_id
from harness.records.run_record import Record, RecordHeader, RunRecord
from harness.records.store import check_writable_folder, kept_run_folder, write_record
from harness.search.front import (
    SearchTrial,
    best_accepted,
    outcome_summary,
    pareto_front,
    quality_excess,
    quality_limit_text,
    quality_score,
    trial_line,
)
from harness.search.job import EXPLORATION_DRAWS, expected_trial_s, load_optuna, tell_outcome, unmeasured_draw
from harness.verdict.policy import Policy, target_policy
from harness.verdict.rules import QualityCheck
from targets.errors import SpeedproofError, UsageError
from targets.runners.choose import runner_for

DEFAULT_BUDGET_S = 600.0
# a search times decode after one prompt length (prefill, when the policy judges it, at this one)
SEARCH_PROMPT_TOKENS = (128,)
ROUND_SIZE = 2  # points built and measured together after the first round (each family's first point)
FIRST_ESTIMATE_S = 45.0  # a trial's time before any trial has run (pydoc-lm: 25-60 s)
RESERVE_S = 10.0  # kept for the record and the clean-up at the end


@dataclass(frozen=True)
class DecoderSearchRequest:
    model: str
    space: str | None = None
    target: str | None = None
    backend: str | None = None
    threads: int | None = None
    policy_file: Path | None = None
    policy_overrides: dict[str, Any] = field(default_factory=dict)
    scenario: DecoderScenario = field(default_factory=lambda: DecoderScenario(prompt_tokens=SEARCH_PROMPT_TOKENS))
    data: Path | None = None
    budget_s: float = DEFAULT_BUDGET_S
    max_trials: int | None = None
    seed: int = 0
    out_dir: Path = Path("results")


@dataclass
class DecoderSearchState:
    """One decoder search: what every round shares."""

    request: DecoderSearchRequest
    source: DecoderSource
    space: DecoderSpace
    text: QualityText
    run: DecoderRun
    artifacts: Path
    started: float
    progress: ProgressCallback
    baseline: DecoderVariant | None = None
    trials: list[SearchTrial] = field(default_factory=list)
    explorer: Any = None

    def left_s(self) -> float:
        return self.request.budget_s - (time.monotonic() - self.started)

    @property
    def policy(self) -> Policy:
        return self.run.policy


def run_decoder_search(request: DecoderSearchRequest, progress: ProgressCallback = no_progress) -> tuple[Record, Path]:
    """Search the decoder's recipe space within the budget; write the record (with the search section)."""
    started = time.monotonic()
    optuna = load_optuna()
    check_writable_folder(request.out_dir)
    families = decoder_families(request.space)
    progress(f"decoder {request.model}: reading it")
    source = resolve_decoder_source(request.model, progress)
    if not source.buildable:
        raise UsageError(
            f"speedproof search {request.model}: a built ONNX Runtime GenAI folder cannot be rebuilt; search the "
            "Hugging Face folder it came from"
        )
    space = decoder_space(families, source.layers, has_training_text(source))
    scenario = request.scenario
    prompt_fits(source, scenario.longest(), "--prompt-tokens/--decode-tokens")
    prompt_ids = prompt_token_ids(scenario, source.folder)
    text = quality_text(source, request.data)
    runner = runner_for(None, None, request.target, progress)
    resolved = decoder_target(request.target, request.backend, request.threads, runner)
    policy = target_policy(resolved.profile, request.policy_file, decoder=True, cli_overrides=request.policy_overrides)
    folder = kept_run_folder(request.out_dir, f"search-{source.name}", new_run_id())
    artifacts = folder / "artifacts"
    artifacts.mkdir(parents=True)
    state = DecoderSearchState(
        request,
        source,
        space,
        text,
        DecoderRun(source, scenario, prompt_ids, resolved, policy, runner, progress),
        artifacts,
        started,
        progress,
    )
    if source.latency_only:
        progress(f"{source.name} has random weights: its fidelity is reported, not judged; every point is timed")
    study = optuna.create_study(
        directions=["maximize", "maximize"],  # the speedup interval's lower end, the quality (-perplexity)
        # the quality constraint is each trial's own (set_constraint, when it is told)
        sampler=optuna.samplers.TPESampler(seed=request.seed, n_startup_trials=len(space.families)),
    )
    for params in first_decoder_points(space):
        study.enqueue_trial(params)
    try:
        stopped_by = _explore(optuna, study, state)
    except KeyboardInterrupt as interrupt:
        record = _record(state, folder, "interrupted")
        path = write_record(record, request.out_dir, label=f"search-{source.name}")
        interrupt.resume_hint = f"search interrupted: record written to {path}"  # type: ignore[attr-defined]
        raise
    _keep_front_folders(state)
    record = _record(state, folder, stopped_by)
    return record, write_record(record, request.out_dir, label=f"search-{source.name}")


def _explore(optuna: Any, study: Any, state: DecoderSearchState) -> str:
    """Rounds of ask, build, measure, tell until the budget, the trial count or the space runs out; says which."""
    first = True
    while True:
        done = sum(1 for trial in state.trials if trial.counts)
        limit = state.request.max_trials
        if limit is not None and done >= limit:
            return "trials"
        size = len(state.space.families) if first else ROUND_SIZE
        size = min(size, limit - done) if limit is not None else size
        asked, stop = _ask_round(optuna, study, state, size)
        if not asked:
            return stop or "budget"
        for (trial, params), outcome in zip(asked, _run_round(state, asked), strict=True):
            tell_outcome(optuna, study, trial, outcome)
            state.trials.append(outcome)
            paid = (outcome.speedup() or {}).get("ratio", 0.0) > 1.0
            for point in next_decoder_points(params, outcome.state, paid, state.space):
                study.enqueue_trial(point, skip_if_exists=True)
            best = best_accepted(state.trials)
            state.progress(
                f"trial {trial.number}: {outcome.recipe}: {trial_line(outcome)}; best so far: "
                + (f"{best.recipe} {best.speedup_text()}" if best else "none accepted yet")
            )
        first = False
        if stop:
            return stop


def _ask_round(
    optuna: Any, study: Any, state: DecoderSearchState, size: int
) -> tuple[list[tuple[Any, dict[str, Any]]], str | None]:
    """Up to `size` points not measured yet that fit in the budget; a point drawn again is told what it was (a
    repeat) and a random unmeasured point queued instead. The second value says why the search must stop."""
    asked: list[tuple[Any, dict[str, Any]]] = []
    expected_total = 0.0
    for _ in range(size + EXPLORATION_DRAWS):
        if len(asked) >= size:
            break
        trial = study.ask()
        recipe = suggest_decoder_recipe(trial, state.space)
        family = str(trial.params[FAMILY_PARAMETER])
        previous = next((item for item in state.trials if item.recipe == recipe and item.counts), None)
        if previous is not None or any(_recipe(other) == recipe for other, _ in asked):
            if previous is not None:
                repeat = replace(previous, number=trial.number, repeat_of=previous.number, duration_s=0.0)
                tell_outcome(optuna, study, trial, repeat)
                state.trials.append(repeat)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            unmeasured = _unmeasured_point(optuna, state, {_recipe(other) for other, _ in asked})
            if unmeasured is None:
                return asked, "space"
            study.enqueue_trial(unmeasured, skip_if_exists=True)
            continue
        expected = _expected_s(state.trials, family)
        if expected_total + expected > state.left_s() - RESERVE_S:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            state.progress(
                f"not starting {recipe}: its trials take about {expected:.0f} s and {max(state.left_s(), 0):.0f} s "
                "of the budget are left"
            )
            return asked, "budget"
        trial.set_user_attr("recipe", recipe)
        expected_total += expected
        asked.append((trial, dict(trial.params)))
    return asked, None


def _recipe(trial: Any) -> str:
    return str(trial.user_attrs.get("recipe", ""))


def _unmeasured_point(optuna: Any, state: DecoderSearchState, also: set[str]) -> dict[str, Any] | None:
    """A point no trial has measured (nor `also`), drawn at random (seeded), or None when none is found."""
    if state.explorer is None:
        state.explorer = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=state.request.seed))
    measured = {trial.recipe for trial in state.trials if trial.counts} | also
    return unmeasured_draw(state.explorer, lambda draw: suggest_decoder_recipe(draw, state.space), measured)


def _expected_s(trials: list[SearchTrial], family: str) -> float:
    """How long a trial of `family` can take (as the CNN search reckons), or a guess before any trial ran."""
    return expected_trial_s(trials, family) or FIRST_ESTIMATE_S


def _run_round(state: DecoderSearchState, asked: list[tuple[Any, dict[str, Any]]]) -> list[SearchTrial]:
    """Build the round's points (and the baseline, the first time) in one process, measure their quality in
    one, cut what fails it, A/B-time the rest; a failure is the trial's, never the search's."""
    started = time.monotonic()
    source = state.source
    trials = [
        SearchTrial(trial.number, _recipe(trial), str(params[FAMILY_PARAMETER]), "failed", 0.0)
        for trial, params in asked
    ]
    state.progress(
        f"round of {len(trials)} [{max(state.left_s(), 0):.0f} s left]: building "
        + ", ".join(trial.recipe for trial in trials)
    )
    plans: list[DecoderBuildPlan | SpeedproofError] = []
    for trial in trials:
        try:
            plans.append(plan_for(parse_recipe(trial.recipe), source))
        except SpeedproofError as error:
            plans.append(error)
    to_build = [plan for plan in plans if isinstance(plan, DecoderBuildPlan)]
    destinations = [
        state.artifacts / f"{trial.number:03d}-{folder_name(trial.recipe)}"
        for trial, plan in zip(trials, plans, strict=True)
        if isinstance(plan, DecoderBuildPlan)
    ]
    new_baseline = state.baseline is None
    if new_baseline:
        to_build.insert(0, DecoderBuildPlan("baseline"))
        destinations.insert(0, state.artifacts / "baseline")
    built = iter(build_decoders(to_build, source, destinations))
    if new_baseline:
        outcome = next(built)
        if isinstance(outcome, SpeedproofError):
            raise SpeedproofError(f"the baseline of {source.name} could not be built: {outcome}")
        state.baseline = DecoderVariant("baseline", to_build[0], Path(outcome["path"]), outcome)
    variants: list[DecoderVariant] = []
    for trial, plan in zip(trials, plans, strict=True):
        variant = DecoderVariant(trial.recipe, plan if isinstance(plan, DecoderBuildPlan) else None)
        outcome = next(built) if isinstance(plan, DecoderBuildPlan) else plan
        if isinstance(outcome, SpeedproofError):
            variant.error = str(outcome)
        else:
            variant.facts, variant.folder = outcome, Path(outcome["path"])
        variants.append(variant)
    baseline = state.baseline
    assert baseline is not None and baseline.folder is not None
    folders = [baseline.folder, *(variant.folder if variant.ok else None for variant in variants)]
    try:
        qualities = measure_quality(folders, state.text, source.name)
    except SpeedproofError as error:  # the quality process itself failed: this round's points, not the search
        if new_baseline:
            raise
        qualities = [None, *({"error": str(error)} for _ in variants)]
    if new_baseline:
        baseline.quality = qualities[0]
        if not baseline.quality or baseline.quality.get("error"):
            raise SpeedproofError(
                f"the quality of {source.name}'s baseline could not be measured: "
                f"{(baseline.quality or {}).get('error', 'no result')}"
            )
    for variant, quality in zip(variants, qualities[1:], strict=True):
        variant.quality = quality
    shared_s = (time.monotonic() - started) / len(trials)
    return [_finish_trial(state, trial, variant, shared_s) for trial, variant in zip(trials, variants, strict=True)]


def _finish_trial(
    state: DecoderSearchState, trial: SearchTrial, variant: DecoderVariant, shared_s: float
) -> SearchTrial:
    """The trial's quality, its cut or its A/B verdict on the judged phase."""
    started = time.monotonic()
    baseline, rules = state.baseline, state.policy.rules
    assert baseline is not None
    if not variant.ok or (variant.quality or {}).get("error"):
        error = variant.error or f"its ONNX decoder could not be run: {(variant.quality or {}).get('error')}"
        return replace(trial, error=error, duration_s=shared_s, quality=variant.quality)
    judged = not state.source.latency_only
    trial = replace(
        trial,
        quality=variant.quality,
        quality_score=quality_score(variant.quality, rules),
        baseline_quality_score=quality_score(baseline.quality, rules),
        quality_excess=quality_excess(variant.quality, baseline.quality, rules) if judged else 0.0,
        artifact_path=str(variant.folder),
        sha256=(variant.facts or {}).get("sha256"),
    )
    check = QualityCheck().evaluate(decoder_evidence(baseline, variant, state.source, state.policy))
    if check.reasons:
        return trial.cut(check.reasons, shared_s + time.monotonic() - started)
    left = state.left_s() - RESERVE_S
    cell = verify_decoder_variant(state.run, baseline, variant, judged_only=True, max_pair_s=left)
    outcome = replace(trial, cell=cell.as_dict(), duration_s=shared_s + time.monotonic() - started)
    if cell.verdict is None or cell.speedup is None:
        return replace(outcome, error=cell.error or "no speedup was measured")
    return replace(outcome, state="timed")


def _kept_folders(trials: list[SearchTrial]) -> set[str | None]:
    """The folders a search keeps: the front's and the best accepted point's."""
    best = best_accepted(trials)
    return {trial.artifact_path for trial in pareto_front(trials)} | ({best.artifact_path} if best else set())


def _keep_front_folders(state: DecoderSearchState) -> None:
    """Remove the folders of points neither on the front nor the best (their hashes stay in the record)."""
    kept = _kept_folders(state.trials)
    for trial in state.trials:
        if trial.artifact_path and trial.artifact_path not in kept and trial.repeat_of is None:
            shutil.rmtree(trial.artifact_path, ignore_errors=True)


def _record(state: DecoderSearchState, folder: Path, stopped_by: str) -> Record:
    """The search's record: the baseline's reference cell and one cell per timed point, the decoder section and the
    search section (every trial, the front, the best accepted point and its kept folder)."""
    policy, source, run = state.policy, state.source, state.run
    trials = state.trials
    kept = _kept_folders(trials)
    reference = verify_decoder_variants(run, [state.baseline]) if state.baseline is not None else []
    cells = [*(cell.as_dict() for cell in reference), *(trial.cell for trial in trials if trial.cell and trial.counts)]
    section = {
        "model": source.name,
        "folder": str(folder.resolve()),
        "space": list(state.space.families),
        "max_accuracy_drop": policy.rules.max_accuracy_drop,
        "max_perplexity_increase": policy.rules.max_perplexity_increase,
        "budget_s": state.request.budget_s,
        "elapsed_s": round(time.monotonic() - state.started, 1),
        "seed": state.request.seed,
        "session": 1,
        "stopped_by": stopped_by,
        **outcome_summary(trials),
        "baseline_quality_score": quality_score(state.baseline.quality if state.baseline else None, policy.rules),
        "quality_limit": quality_limit_text(
            state.baseline.quality if state.baseline else None, [trial.quality for trial in trials], policy.rules
        ),
        "timed_phases": "the judged phase alone; verify the chosen recipe for the others",
    }
    for item in section["trials"]:
        item["artifact_kept"] = bool(item["artifact_path"]) and item["artifact_path"] in kept
    record = RunRecord(
        header=RecordHeader.new("search", run.runner.fingerprint(), run.resolved, new_run_id()),
        policy=policy.as_dict(),
        protocol=DECODER_PROTOCOL.as_dict(),
        model_source={"spec": state.request.model, **source.as_dict()},
        artifact_dir=str(state.artifacts.resolve()),
        variants=[],
        cells=(),
        sections={
            "decoder": {
                "scenario": run.scenario.as_dict(),
                "quality": state.text.as_dict(),
                **({"trained": source.facts} if "held_out_perplexity" in source.facts else {}),
                "phases": [phase.key for phase in run.scenario.phases() if phase.kind == _judged(policy)],
                "judged": _judged(policy),
                "backend": DECODER_BACKEND,
            },
            "search": section,
        },
    ).as_dict()
    record["cells"] = cells
    return record


def _judged(policy: Policy) -> str:
    return DECODER_METRICS[policy.schedule.metric]
