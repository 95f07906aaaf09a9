"""speedproof search end to end on tiny torch sources: real builds, real quality, real A/B pairs in
live workers, a real optuna study in SQLite; interrupted, crashed and resumed searches."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from harness.cli import EXIT_CELL_FAILED, EXIT_OK, EXIT_USAGE, main
from harness.recipes.grammar import parse_recipe
from harness.records.store import load_record
from harness.reports.html import html_page
from harness.reports.table import search_text
from harness.search.job import SETTINGS_FILE, STUDY_FILE, STUDY_NAME, SearchRequest, run_search
from tests.helpers import FAST_POLICY, FAST_POLICY_FLAGS, FAST_PROTOCOL, TINY_CNN

pytestmark = pytest.mark.slow

# its test labels are its own predictions: any change of class is a drop, so cuts are certain
SELF_LABELLED = "tests.tiny_models:tiny_cnn_self_labelled"


def _request(out: Path, **changes: object) -> SearchRequest:
    request = SearchRequest(
        model=SELF_LABELLED,
        threads=1,
        space="structured,int8",
        max_accuracy_drop=0.05,
        max_trials=4,
        policy_overrides=FAST_POLICY,
        protocol=FAST_PROTOCOL,
        out_dir=out,
    )
    return replace(request, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    return run_search(_request(tmp_path_factory.mktemp("search")))


def _trials(record: dict) -> list[dict]:
    return record["search"]["trials"]


def test_every_trial_is_recorded_with_what_became_of_it(searched: tuple[dict, Path]) -> None:
    record, _ = searched
    trials = _trials(record)
    numbers = [trial["number"] for trial in trials]
    assert numbers == sorted(set(numbers)) and numbers[0] == 0
    # --trials counts measured points; a point drawn again is a repeat, told what it was, not measured
    assert sum(1 for trial in trials if trial["repeat_of"] is None) == 4
    for trial in trials:
        if trial["repeat_of"] is not None:
            original = next(item for item in trials if item["number"] == trial["repeat_of"])
            assert trial["recipe"] == original["recipe"] and trial["state"] == original["state"]
    # every family's first point comes first
    assert [trial["recipe"] for trial in trials[:2]] == ["structured:0.5:round_to=8:finetune=10", "int8-static"]
    assert record["search"]["stopped_by"] == "trials"
    for trial in trials:
        parse_recipe(trial["recipe"])
        if trial["state"] == "cut_by_quality":
            assert trial["quality_excess"] > 0 and trial["cell"] is None  # never timed
            assert "allowed" in trial["cut_reason"]
        elif trial["state"] == "timed":
            assert trial["quality_excess"] <= 1e-9
            assert trial["cell"]["speedup"]["ci_low"] <= trial["cell"]["speedup"]["ratio"]
            assert trial["cell"]["verdict"]["decision"] in ("ACCEPT", "REJECT")
    states = [trial["state"] for trial in trials]
    assert "cut_by_quality" in states and "timed" in states
    # fine-tuning on other labels moves the self-labelled model's classes: the first point is cut
    assert trials[0]["state"] == "cut_by_quality"
    counts = record["search"]["counts"]
    assert sum(counts.values()) + record["search"]["repeats"] == len(trials)
    timed = {trial["recipe"] for trial in trials if trial["state"] == "timed" and trial["repeat_of"] is None}
    cells = record["cells"]
    assert cells[0]["reference"] and {cell["variant"] for cell in cells[1:]} == timed


def test_the_front_and_the_best_accepted_point_come_from_the_timed_trials(searched: tuple[dict, Path]) -> None:
    record, path = searched
    trials = {trial["number"]: trial for trial in _trials(record)}
    front = record["search"]["front"]
    assert front and all(trials[number]["state"] == "timed" for number in front)
    best = record["search"]["best"]
    accepted = [t for t in trials.values() if t["state"] == "timed" and t["cell"]["verdict"]["decision"] == "ACCEPT"]
    if best is None:
        assert not accepted
    else:
        assert best["cell"]["speedup"]["ci_low"] == max(t["cell"]["speedup"]["ci_low"] for t in accepted)
    text = search_text(record)
    assert "search of tiny_cnn_self_labelled" in text and "cut by quality (not timed):" in text
    assert ("best accepted:" in text) == (best is not None)
    # the record is a record like any other: it loads and renders
    loaded = load_record(path)
    assert "every trial of the search" in html_page(loaded)
    folder = Path(record["search"]["folder"])
    assert (folder / STUDY_FILE).is_file() and json.loads((folder / SETTINGS_FILE).read_text())[
        "model"
    ] == SELF_LABELLED


def test_a_resumed_search_keeps_every_trial_and_continues(searched: tuple[dict, Path], tmp_path: Path) -> None:
    record, path = searched
    folder = Path(record["search"]["folder"])
    copy = tmp_path / folder.name  # the module's search stays as it was for the other tests
    _copy_tree(folder, copy)
    resumed, resumed_path = run_search(_request(tmp_path, model="", max_trials=6), resume=copy)
    trials, before = _trials(resumed), _trials(record)
    assert trials[: len(before)] == before  # the first session's trials, read back from the study
    # points the first session queued (gentler, longer fine-tuning) run now, each once
    numbers = [trial["number"] for trial in trials]
    assert numbers == sorted(set(numbers))
    assert all(trial["state"] != "interrupted" for trial in trials)
    assert sum(1 for trial in trials if trial["repeat_of"] is None) == 6
    assert resumed["search"]["session"] == 2 and resumed_path.parent == tmp_path
    assert (copy / "session-2" / "artifacts").is_dir()


def _copy_tree(source: Path, destination: Path) -> None:
    import shutil

    shutil.copytree(source, destination, symlinks=True)


def test_an_interrupted_search_writes_its_record_and_resumes(tmp_path: Path) -> None:
    def interrupt_at_the_second_trial(message: str) -> None:
        if message.startswith("trial 1 ["):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(_request(tmp_path, space="int8"), progress=interrupt_at_the_second_trial)
    (written,) = tmp_path.glob("*search*.json")
    record = json.loads(written.read_text())
    assert record["search"]["stopped_by"] == "interrupted" and len(_trials(record)) == 1
    folder = Path(record["search"]["folder"])
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{folder / STUDY_FILE}")
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    # a crash (nothing told): the trial stays RUNNING in the study and is reported as interrupted
    study.ask()
    # and a point queued but never asked (as gentler steps are): the next session asks it, once
    study.enqueue_trial({"family": "int8", "int8.int8": "dynamic", "int8.per_channel": True})
    resumed, _ = run_search(_request(tmp_path, model="", space="int8", max_trials=4), resume=folder)
    trials = _trials(resumed)
    states = [trial["state"] for trial in trials]
    assert states[1] == "interrupted" and states[2] == "interrupted"  # told FAIL, and left RUNNING
    assert len(states) >= 4 and states[0] != "interrupted" and states.count("interrupted") == 2
    numbers = [trial["number"] for trial in trials]
    assert numbers == sorted(set(numbers))
    (queued,) = [trial for trial in trials if trial["number"] == 3]
    assert queued["recipe"] == "int8-dynamic" and queued["state"] in ("timed", "cut_by_quality")


def test_a_trial_that_would_run_past_the_budget_is_not_started(tmp_path: Path) -> None:
    record, _ = run_search(_request(tmp_path, space="int8", max_trials=None, budget_s=0.5))
    assert record["search"]["stopped_by"] == "budget"
    assert len(_trials(record)) == 1  # the first starts (nothing known yet); then the budget is spent


def test_the_search_command_prints_the_trials_and_writes_the_front(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    no_labels = "tests.tiny_models:tiny_cnn_without_data"
    code = main(
        ["search", no_labels, "--space", "int8", "--trials", "2", "--threads", "1", "--out", str(tmp_path)]
        + FAST_POLICY_FLAGS
    )
    out = capsys.readouterr().out
    assert code in (EXIT_OK, EXIT_CELL_FAILED)
    assert ("best accepted:" in out) == (code == EXIT_OK)
    assert "search of tiny_cnn_without_data on" in out and "record written to" in out
    # no labels: the quality is fidelity to the baseline's outputs, and the limit said is the one applied
    assert "fidelity" in out
    assert "quality limit: top-1 agreement with the baseline >= 0.99" in out and "max_accuracy_drop" not in out
    if "front written to" in out:
        assert list(tmp_path.glob("*.png"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search"], "give MODEL, or --resume DIR"),
        (["search", TINY_CNN, "--task", "medical", "--max-accuracy-drop", "0.02"], "give one"),
        (["search", TINY_CNN, "--budget-s", "0"], "--budget-s 0: must be > 0"),
        (["search", "--resume", "/nonexistent/search-x"], "no such folder"),
    ],
)
def test_a_search_that_cannot_run_says_why_and_exits_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main([*argv, "--out", str(tmp_path)]) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_resuming_another_models_search_is_refused(searched: tuple[dict, Path], capsys: pytest.CaptureFixture) -> None:
    folder = record_folder = Path(searched[0]["search"]["folder"])
    assert main(["search", TINY_CNN, "--resume", str(folder)]) == EXIT_USAGE
    assert f"that search is of {SELF_LABELLED!r}" in capsys.readouterr().err
    assert not (record_folder / "session-2").exists()
