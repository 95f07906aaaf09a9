"""The search job (`speedproof search`): explore the recipe space with optuna, each point built and
judged as `verify` judges a variant, and keep the fastest compression that holds quality.

A trial is one recipe. Its quality is measured first (on the source's labelled data, `--data` or
against the baseline's outputs); a trial that already fails the quality rule is cut there and
never timed (optuna's PRUNED). A trial that holds quality is A/B-compared with the baseline under
the same policy, intervals and stopping rule as `verify`, and told to optuna with two objectives
to maximise: the speedup interval's lower end and the quality, and constraints (quality and memory
within the policy's limits). After a pruning point, the same point one step gentler (after a cut)
or stronger (after it held quality) is queued for the optimiser: the search of the ratio toward the
quality limit that the guides do by hand. The study lives in SQLite beside the record (`study.db`), every
trial's outcome in its user attributes, so a search interrupted by Ctrl-C or a crash continues
with `--resume DIR` where it stopped. The budget is honoured: a trial whose family's longest trial
so far would run past it is not started.
"""

from __future__ import annotations

import json
import os
import stat
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness.models.sources import source_label
from harness.progress import ProgressCallback, no_progress
from harness.recipes.grammar import parse_recipe
from harness.records.provenance import new_run_id
from harness.records.run_record import Record
from harness.records.store import check_writable_folder, kept_run_folder, write_record
from harness.search import MAX_SEED
from harness.search.front import (
    SearchTrial,
    best_accepted,
    outcome_summary,
    quality_excess,
    quality_limit_text,
    quality_score,
    trial_line,
)
from harness.search.space import (
    FAMILY_PARAMETER,
    Family,
    SpaceFacts,
    first_points,
    more_recovery,
    neighbour,
    space_families,
    suggest_recipe,
)
from harness.variants.builder import BuiltVariant, VariantBuilder
from harness.variants.preparation import PreparedVariants, prepare_source
from harness.verdict.policy import target_policy
from harness.verdict.rules import QualityCheck
from harness.verdict.verify import (
    ModelOnTarget,
    VerifyContext,
    reference_cell,
    variant_evidence,
    verification_record,
    verify_variant,
)
from targets.errors import InputError, SpeedproofError, UsageError
from targets.files_in import CONFIG_CAP_BYTES, checked_input, read_input_json
from targets.files_out import write_output
from targets.inputs import InputSettings
from targets.runners.base import Runner
from targets.runners.choose import runner_for
from targets.runners.compatibility import require_one_backend, resolve_target
from targets.runners.protocol import MeasurementProtocol

# acceptable quality loss per application (absolute top-1, or the task metric's units)
TASK_MAX_DROP = {"safety-critical": 0.01, "medical": 0.02, "standard": 0.05, "ranking": 0.10, "generative": 0.10}
SETTINGS_FILE = "search.json"
STUDY_FILE = "study.db"
STUDY_NAME = "speedproof-search"
OUTCOME_ATTRIBUTE = "outcome"
# random draws that find no point not measured yet: the space is spent
EXPLORATION_DRAWS = 200
DEFAULT_BUDGET_S = 600.0


@dataclass(frozen=True)
class SearchRequest(ModelOnTarget):
    space: str | None = None  # --space A,B: families; None: the default space for this source and target
    max_accuracy_drop: float | None = None
    task: str | None = None  # sets max_accuracy_drop from TASK_MAX_DROP
    budget_s: float = DEFAULT_BUDGET_S
    max_trials: int | None = None
    seed: int = 0

    def quality_overrides(self) -> dict[str, Any]:
        """The policy override that the quality limit (--max-accuracy-drop or --task) sets."""
        if self.max_accuracy_drop is not None and self.task is not None:
            raise UsageError(
                f"--max-accuracy-drop {self.max_accuracy_drop:g} and --task {self.task} both set the quality limit; "
                "give one"
            )
        if self.task is not None:
            if self.task not in TASK_MAX_DROP:
                raise UsageError(f"--task {self.task!r}: valid: {', '.join(TASK_MAX_DROP)}")
            return {"max_accuracy_drop": TASK_MAX_DROP[self.task]}
        if self.max_accuracy_drop is not None:
            if not 0.0 <= self.max_accuracy_drop <= 1.0:
                raise UsageError(
                    f"--max-accuracy-drop {self.max_accuracy_drop:g}: must lie in [0, 1] (absolute: 0.01 is 1 pt)"
                )
            return {"max_accuracy_drop": self.max_accuracy_drop}
        return {}

    def check(self, where: str = "--seed") -> None:
        """Raise UsageError for a seed the samplers cannot take (they draw from numpy's seeds:
        0 to 2**32 - 1, less room for one seed per session and trial)."""
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"{where} {self.seed!r}: a seed is a whole number from 0 to {MAX_SEED}")

    def settings(self) -> dict[str, Any]:
        """The request as JSON (search.json), what `--resume` continues with."""
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, InputSettings | MeasurementProtocol):
                value = {part.name: _jsonable(getattr(value, part.name)) for part in fields(value)}
            data[item.name] = _jsonable(value)
        return data

    @classmethod
    def from_settings(cls, data: dict[str, Any], where: Path) -> SearchRequest:
        try:
            values = dict(data)
            for key, kinds in SETTINGS_TYPES.items():
                if not isinstance(values[key], kinds):
                    raise TypeError(f"{key} is {values[key]!r}")
            values["inputs"] = InputSettings(**{key: _tuple(value) for key, value in values["inputs"].items()})
            values["protocol"] = MeasurementProtocol(**values["protocol"])
            for key in ("ssh_config", "policy_file", "out_dir"):
                values[key] = Path(values[key]) if values[key] is not None else None
            values["input_shapes"] = tuple(values["input_shapes"])
            return cls(**values)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise SpeedproofError(
                f"{where}: not the settings of a speedproof search ({type(error).__name__}: {error}); start a new "
                "search instead of --resume"
            ) from None


# what search.json must hold for --resume to trust it (the rest is checked by the types it builds)
SETTINGS_TYPES: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "space": (str, type(None)),
    "max_accuracy_drop": (int, float, type(None)),
    "task": (str, type(None)),
    "max_trials": (int, type(None)),
    "seed": int,
    "inputs": dict,
    "protocol": dict,
    "policy_overrides": dict,
    "input_shapes": list,
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@dataclass
class SearchState:
    """One session of a search: what every trial shares."""

    request: SearchRequest
    folder: Path
    prepared: PreparedVariants
    builder: VariantBuilder
    baseline: BuiltVariant
    context: VerifyContext
    families: list[Family]
    facts: SpaceFacts
    started: float
    budget_s: float
    progress: ProgressCallback
    trials: list[SearchTrial] = field(default_factory=list)  # of every session, in trial order
    explorer: Any = None  # an in-memory optuna study with a random sampler: points not measured yet

    def left_s(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)


def run_search(
    request: SearchRequest,
    progress: ProgressCallback = no_progress,
    runner: Runner | None = None,
    resume: Path | None = None,
) -> tuple[Record, Path]:
    """Search (or, with `resume`, continue the search kept in that folder) and write the record."""
    optuna = load_optuna()
    request.check()
    if resume is not None:
        folder, request, sessions = _resumed(resume, request)
        request.check(f"--resume {resume}: its {SETTINGS_FILE} has seed")
    else:
        check_writable_folder(request.out_dir)
        folder, sessions = kept_run_folder(request.out_dir, f"search-{source_label(request.model)}", new_run_id()), 0
    overrides = {**request.policy_overrides, **request.quality_overrides()}
    runner = runner or runner_for(request.remote, request.ssh_config, request.target, progress)
    resolved = resolve_target(request.target, request.threads, runner, request.backend)
    require_one_backend(resolved, "search")
    policy = target_policy(resolved.profile, request.policy_file, cli_overrides=overrides)
    session_dir = folder if not sessions else folder / f"session-{sessions + 1}"
    prepared, builder = prepare_source(
        request.model,
        [parse_recipe("baseline")],
        request.input_shapes,
        resolved,
        runner,
        session_dir,
        progress,
        request.inputs,
    )
    facts = space_facts(prepared, resolved.profile.requires.cuda_device)
    families = space_families(request.space, facts)
    if not sessions:
        folder.mkdir(parents=True, exist_ok=True)  # a torch source was exported into it
        write_output(folder / SETTINGS_FILE, json.dumps(request.settings(), indent=2) + "\n", "--out", replace=False)
    builder.artifact_dir.mkdir(parents=True, exist_ok=True)
    progress("building the baseline")
    baseline = builder.build(parse_recipe("baseline"), 0)
    if not baseline.ok:
        raise SpeedproofError(f"the baseline of {request.model} could not be built: {baseline.error}")
    prepared = replace(prepared, variants=[baseline])
    context = VerifyContext(resolved, policy, runner, request.protocol, progress=progress)
    try:
        study = _study(optuna, folder, request.seed, sessions)
        earlier = [_stored_trial(trial) for trial in study.trials if trial.state != optuna.trial.TrialState.WAITING]
    except (KeyboardInterrupt, SpeedproofError):
        raise
    except Exception as error:  # optuna's and SQLAlchemy's errors, damaged trial attributes
        raise InputError(
            f"{folder / STUDY_FILE}: cannot be continued ({type(error).__name__}: {str(error)[:300]}); it was written "
            "by another optuna or damaged. Start a new search instead of --resume"
        ) from None
    state = SearchState(
        request,
        folder,
        prepared,
        builder,
        baseline,
        context,
        families,
        facts,
        time.monotonic(),
        request.budget_s,
        progress,
        # a WAITING trial (queued, never asked) is not a trial yet: this session asks it
        trials=earlier,
    )
    if not sessions:
        for params in first_points(families, facts):
            study.enqueue_trial(params, skip_if_exists=True)
    if facts.torch_source and prepared.source.latency_only:
        progress(
            f"{prepared.source.name} has random weights (latency only): quality cannot cut a point; every one is timed"
        )
    out_dir = request.out_dir if resume is None else folder.parent
    try:
        stopped_by = _explore(optuna, study, state)
    except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM: what was measured is written, then it unwinds
        record = _record(state, "interrupted", sessions + 1)
        path = write_record(record, out_dir, label=f"search-{state.prepared.source.name}")
        # the command prints it (a progress line is not shown off a terminal)
        interrupt.resume_hint = (  # type: ignore[attr-defined]
            f"search interrupted: record written to {path}; continue it with: speedproof search --resume {folder}"
        )
        raise
    record = _record(state, stopped_by, sessions + 1)
    return record, write_record(record, out_dir, label=f"search-{state.prepared.source.name}")


def space_facts(prepared: PreparedVariants, gpu: bool) -> SpaceFacts:
    """What the space depends on, read from the source (its torch module, data and graph)."""
    from harness.recipes.layer_dropping import find_layer_stack

    source = prepared.source
    stack = 0
    if source.is_torch:
        try:
            stack = len(find_layer_stack(source.torch_model().module).layers)
        except SpeedproofError:
            stack = 0
    initializers = {item.name for item in source.model.graph.initializer}
    has_matmuls = any(
        node.op_type in ("MatMul", "Gemm") and any(name in initializers for name in node.input[1:2])
        for node in source.model.graph.node
    )
    return SpaceFacts(
        torch_source=source.is_torch,
        trains="train_data" in source.provides,
        stack_layers=stack,
        has_matmuls=has_matmuls,
        gpu=gpu,
    )


def load_optuna() -> Any:
    """optuna, quiet, or a SpeedproofError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise SpeedproofError("speedproof search needs optuna: pip install 'optuna>=4'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _study(optuna: Any, folder: Path, seed: int, sessions: int) -> Any:
    """The study in `folder/study.db`: created, or loaded to continue. A resumed session's sampler
    is seeded anew (seed + session), so that it does not draw the first session's points again."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed + sessions, n_startup_trials=4)
    storage = f"sqlite:///{(folder / STUDY_FILE).resolve()}"
    return optuna.create_study(
        study_name=STUDY_NAME,
        storage=storage,
        sampler=sampler,
        directions=["maximize", "maximize"],  # the speedup interval's lower end, the quality
        load_if_exists=sessions > 0,
    )


def _resumed(folder: Path, given: SearchRequest) -> tuple[Path, SearchRequest, int]:
    """The folder, settings and number of earlier sessions of the search to continue; the model,
    if given again, must be the one it searched."""
    settings = folder / SETTINGS_FILE
    if not folder.is_dir():
        what = "not a folder" if folder.exists() else "no such folder"
        raise InputError(f"--resume {folder}: {what}; pass the folder of a search (it holds {SETTINGS_FILE})")
    if not settings.is_file() or not (folder / STUDY_FILE).is_file():
        raise InputError(f"--resume {folder}: not the folder of a search: it holds no {SETTINGS_FILE} and {STUDY_FILE}")
    saved = SearchRequest.from_settings(read_input_json(settings, "search settings", CONFIG_CAP_BYTES), settings)
    if given.model and given.model != saved.model:
        raise InputError(f"--resume {folder}: that search is of {saved.model!r}, not {given.model!r}")
    _check_study_file(folder / STUDY_FILE)
    sessions = 1 + sum(1 for child in folder.iterdir() if child.is_dir() and child.name.startswith("session-"))
    next_session = folder / f"session-{sessions + 1}"
    if os.path.lexists(next_session):
        raise InputError(
            f"--resume {folder}: {next_session.name} is there but is not the folder of a session; move it away"
        )
    request = replace(
        saved,
        budget_s=given.budget_s,
        max_trials=given.max_trials if given.max_trials is not None else saved.max_trials,
    )
    return folder, request, sessions


def _check_study_file(path: Path) -> None:
    """Refuse a study database that optuna must not open: a link (its tables would be added to the
    file behind it), a hard link, not SQLite, or one with triggers (which could drop what a trial
    measured); the one way in checks that it is a plain file."""
    facts = os.lstat(path)
    if stat.S_ISLNK(facts.st_mode) or facts.st_nlink > 1:
        raise InputError(
            f"{path}: is a link to another file; a search continues only in the study database it made itself"
        )
    checked_input(path, "study database")
    with path.open("rb") as handle:
        header = handle.read(16)
    if header != b"SQLite format 3\x00":
        raise InputError(f"{path}: not an SQLite database; it is not the study of a search. Start a new search")
    import sqlite3

    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            triggers = connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise InputError(f"{path}: not a readable SQLite database ({error}); start a new search") from None
    if triggers:
        raise InputError(
            f"{path}: has triggers ({', '.join(str(row[0]) for row in triggers)}), which optuna never makes and which "
            "could change what a trial measured; start a new search"
        )


def _explore(optuna: Any, study: Any, state: SearchState) -> str:
    """Ask, build, judge and tell until the budget, the trial count or the space runs out; says which."""
    while True:
        done = sum(1 for trial in state.trials if trial.counts)
        if state.request.max_trials is not None and done >= state.request.max_trials:
            return "trials"
        if state.left_s() <= 0:
            return "budget"
        trial = study.ask()
        try:
            outcome = _next_outcome(optuna, study, trial, state)
        except KeyboardInterrupt:
            if study.trials[-1].state == optuna.trial.TrialState.RUNNING:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        if outcome is None:
            return "budget"
        tell_outcome(optuna, study, trial, outcome)
        state.trials.append(outcome)
        for step in _next_steps(trial.params, outcome, state.facts):
            study.enqueue_trial(step, skip_if_exists=True)
        if outcome.repeat_of is not None:
            # the sampler exploits what it knows: give it a point not measured yet, drawn at random
            unmeasured = _unmeasured_point(optuna, state)
            if unmeasured is None:
                return "space"
            study.enqueue_trial(unmeasured, skip_if_exists=True)
            continue
        best = best_accepted(state.trials)
        state.progress(
            f"trial {trial.number}: {trial_line(outcome)}; best so far: "
            + (f"{best.recipe} {best.speedup_text()}" if best else "none accepted yet")
        )


def _next_outcome(optuna: Any, study: Any, trial: Any, state: SearchState) -> SearchTrial | None:
    """Draw the trial's point and measure it; a point measured before is its repeat (not measured
    again); None when it would run past the budget (the trial is told FAIL, not started)."""
    recipe = suggest_recipe(trial, state.families, state.facts)
    family = str(trial.params[FAMILY_PARAMETER])
    previous = next((item for item in state.trials if item.recipe == recipe and item.counts), None)
    if previous is not None:
        return replace(previous, number=trial.number, repeat_of=previous.number, duration_s=0.0)
    expected = expected_trial_s(state.trials, family)
    if expected is not None and expected > state.left_s():
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        state.progress(
            f"not starting {recipe}: its family's trials took up to {expected:.0f} s and {state.left_s():.0f} s "
            "of the budget are left"
        )
        return None
    state.progress(f"trial {trial.number} [{max(state.left_s(), 0):.0f} s left]: {recipe}")
    return _run_trial(trial.number, recipe, family, state)


def _next_steps(params: dict[str, Any], outcome: SearchTrial, facts: SpaceFacts) -> list[dict[str, Any]]:
    """Toward the quality limit: after a cut, the point one step gentler and the point with longer
    fine-tuning; after a point that held quality and ran faster than the baseline, one step stronger."""
    if outcome.repeat_of is not None:
        return []
    if outcome.state == "cut_by_quality":
        steps = [neighbour(params, True, facts), more_recovery(params, facts)]
    elif outcome.state == "timed" and (outcome.speedup() or {}).get("ratio", 0.0) > 1.0:
        steps = [neighbour(params, False, facts)]
    else:
        steps = []
    return [step for step in steps if step is not None]


def _unmeasured_point(optuna: Any, state: SearchState) -> dict[str, Any] | None:
    """The parameters of a point no trial has measured, drawn at random (seeded), or None when
    EXPLORATION_DRAWS draws find none."""
    if state.explorer is None:
        sampler = optuna.samplers.RandomSampler(seed=state.request.seed + len(state.trials))
        state.explorer = optuna.create_study(sampler=sampler)
    measured = {trial.recipe for trial in state.trials if trial.counts}
    return unmeasured_draw(state.explorer, lambda draw: suggest_recipe(draw, state.families, state.facts), measured)


def unmeasured_draw(explorer: Any, suggest: Callable[[Any], str], measured: set[str]) -> dict[str, Any] | None:
    """Draws of `explorer` (an optuna study with a random sampler) until one suggests a recipe not in
    `measured`: its parameters, or None after EXPLORATION_DRAWS draws."""
    for _ in range(EXPLORATION_DRAWS):
        draw = explorer.ask()
        recipe = suggest(draw)
        explorer.tell(draw, 0.0)
        if recipe not in measured:
            return dict(draw.params)
    return None


def expected_trial_s(trials: list[SearchTrial], family: str) -> float | None:
    """How long a trial of `family` can take: its family's longest so far, else the median trial."""
    same = [trial.duration_s for trial in trials if trial.family == family and trial.counts]
    if same:
        return max(same)
    durations = [trial.duration_s for trial in trials if trial.counts]
    return statistics.median(durations) if durations else None


def _run_trial(number: int, recipe_text: str, family: str, state: SearchState) -> SearchTrial:
    """Build the point, cut it on quality, else A/B it; a failure is the trial's, never the search's."""
    started = time.monotonic()
    built = state.builder.build(parse_recipe(recipe_text), number + 1)
    trial = SearchTrial(number=number, recipe=recipe_text, family=family, state="failed", duration_s=0.0)
    rules = state.context.policy.rules
    if not built.ok:
        return replace(trial, error=built.error, duration_s=time.monotonic() - started)
    trial = replace(
        trial,
        quality=built.quality,
        quality_score=quality_score(built.quality, rules),
        baseline_quality_score=quality_score(state.baseline.quality, rules),
        quality_excess=quality_excess(built.quality, state.baseline.quality, rules),
        artifact_path=str(built.artifact_path),
        sha256=(built.artifact or {}).get("sha256"),
    )
    evidence = variant_evidence(state.prepared, state.baseline, built, state.context)
    check = QualityCheck().evaluate(evidence)
    if check.reasons:
        return trial.cut(check.reasons, time.monotonic() - started)
    backend = state.context.resolved.profile.backends[0]
    cell = verify_variant(state.prepared, state.baseline, built, backend, state.context)
    cell_dict = cell.as_dict()
    if cell.verdict is None or cell.speedup is None:
        return replace(
            trial, error=cell.error or "no speedup was measured", cell=cell_dict, duration_s=time.monotonic() - started
        )
    return replace(trial, state="timed", cell=cell_dict, duration_s=time.monotonic() - started)


def tell_outcome(optuna: Any, study: Any, trial: Any, outcome: SearchTrial) -> None:
    """Tell optuna the outcome: a timed point its two values, a point cut by quality PRUNED (with its
    quality constraint, so the sampler knows how far it missed), a failed one FAIL."""
    trial.set_user_attr(OUTCOME_ATTRIBUTE, outcome.as_dict())
    if outcome.state in ("timed", "cut_by_quality"):
        for key, value in outcome.constraints().items():
            trial.set_constraint(key, value)
    if outcome.state == "timed":
        low = outcome.speedup_low()
        assert low is not None
        study.tell(trial, [low, outcome.quality_score if outcome.quality_score is not None else 0.0])
    elif outcome.state == "cut_by_quality":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _stored_trial(frozen: Any) -> SearchTrial:
    """A trial of an earlier session, from its user attributes (a trial cut off by a crash or
    Ctrl-C before it was told has none: it is `interrupted`)."""
    data = frozen.user_attrs.get(OUTCOME_ATTRIBUTE)
    if data is None:
        return SearchTrial(frozen.number, "", str(frozen.params.get(FAMILY_PARAMETER, "")), "interrupted", 0.0)
    return SearchTrial.from_dict({**data, "number": frozen.number})


def _record(state: SearchState, stopped_by: str, session: int) -> Record:
    """The verification record of the timed trials (one cell each, the baseline's reference cell
    first) with the search section: every trial, the front, the best accepted point."""
    policy = state.context.policy
    backend = state.context.resolved.profile.backends[0]
    reference = reference_cell(state.prepared, state.baseline, backend, policy)
    record = verification_record(
        "search", state.context, new_run_id(), state.request.model, state.prepared, [reference], state.folder
    )
    section = {
        "model": state.prepared.source.name,
        "folder": str(state.folder.resolve()),
        "study": str((state.folder / STUDY_FILE).resolve()),
        "space": [family.name for family in state.families],
        "max_accuracy_drop": policy.rules.max_accuracy_drop,
        "budget_s": state.budget_s,
        "seed": state.request.seed,
        "session": session,
        "stopped_by": stopped_by,
        **outcome_summary(state.trials),
        "baseline_quality_score": quality_score(state.baseline.quality, policy.rules),
        "quality_limit": quality_limit_text(
            state.baseline.quality, [trial.quality for trial in state.trials], policy.rules
        ),
    }
    data = record.with_section("search", section).as_dict()
    # trials of earlier sessions are kept as the cells they wrote: added as such, after the reference
    data["cells"] = [*data["cells"], *(trial.cell for trial in _distinct(state.trials) if trial.cell is not None)]
    return data


def _distinct(trials: list[SearchTrial]) -> list[SearchTrial]:
    """Each recipe's first measured trial (a repeat is not a second cell)."""
    seen: set[str] = set()
    out = []
    for trial in trials:
        if trial.counts and trial.recipe not in seen:
            seen.add(trial.recipe)
            out.append(trial)
    return out
