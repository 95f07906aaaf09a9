"""The search space (families, their points as recipes, the first points, the errors of --space) and
what is read from trials (quality scores and constraints, the Pareto front, the best accepted)."""

from __future__ import annotations

import re

import optuna
import pytest

from harness.recipes.grammar import parse_recipe
from harness.search.front import SearchTrial, best_accepted, pareto_front, quality_excess, quality_score, trial_line
from harness.search.job import _next_steps, expected_trial_s
from harness.search.space import (
    FAMILIES,
    SpaceFacts,
    first_points,
    more_recovery,
    neighbour,
    space_families,
    suggest_recipe,
)
from harness.verdict.policy import AcceptanceRules
from targets.errors import SpeedproofError

CNN_WITH_DATA = SpaceFacts(torch_source=True, trains=True, has_matmuls=True)
TRANSFORMER = SpaceFacts(torch_source=True, trains=True, stack_layers=4, has_matmuls=True)
ONNX_FILE = SpaceFacts(torch_source=False, trains=False, has_matmuls=True)


def test_the_default_space_holds_what_can_pay_for_the_source_and_target() -> None:
    assert [family.name for family in space_families(None, CNN_WITH_DATA)] == [
        "structured",
        "structured+int8",
        "int8",
        "lowrank",
        "int4",
    ]
    assert "drop-layers" in [family.name for family in space_families(None, TRANSFORMER)]
    # an ONNX file: only what transforms the graph
    assert [family.name for family in space_families(None, ONNX_FILE)] == ["int8", "int4"]
    gpu = [family.name for family in space_families(None, SpaceFacts(torch_source=True, trains=False, gpu=True))]
    assert "fp16" in gpu and "int8" not in gpu


@pytest.mark.parametrize(
    ("text", "facts", "message"),
    [
        ("structurd", CNN_WITH_DATA, "unknown family 'structurd' (did you mean \"structured\"?)"),
        ("structured", ONNX_FILE, "this source is an ONNX file; an ONNX file can be searched with int8, int4, fp16"),
        ("drop-layers", CNN_WITH_DATA, "the model has no stack of repeated encoder layers"),
        ("int8,int8", CNN_WITH_DATA, "names int8 twice"),
        (",", CNN_WITH_DATA, "name at least one family"),
    ],
)
def test_a_space_that_cannot_be_searched_is_a_clear_error(text: str, facts: SpaceFacts, message: str) -> None:
    with pytest.raises(SpeedproofError, match=re.escape(message)):
        space_families(text, facts)


@pytest.mark.parametrize("facts", [CNN_WITH_DATA, TRANSFORMER, ONNX_FILE, SpaceFacts(True, False, 3, True)])
def test_every_point_the_sampler_can_draw_is_a_recipe_verify_takes(facts: SpaceFacts) -> None:
    families = [family for family in FAMILIES.values() if (facts.torch_source or not family.needs_torch)]
    families = [family for family in families if not family.applies(facts)]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = set()
    for _ in range(300):
        trial = study.ask()
        recipe = suggest_recipe(trial, families, facts)
        parse_recipe(recipe)  # raises on anything the grammar refuses
        drawn.add(recipe)
        study.tell(trial, 0.0)
        if not facts.trains:
            assert "finetune" not in recipe and "distill" not in recipe
        if "steps=" in recipe:
            assert "finetune=" in recipe  # rounds only with recovery between them
    assert len(drawn) > (30 if facts.torch_source else 8)


def test_each_familys_first_point_is_its_default_recipe() -> None:
    study = optuna.create_study()
    families = space_families(None, TRANSFORMER)
    for params in first_points(families, TRANSFORMER):
        study.enqueue_trial(params)
    recipes = []
    for _ in families:
        trial = study.ask()
        recipes.append(suggest_recipe(trial, families, TRANSFORMER))
        study.tell(trial, 0.0)
    assert recipes == [
        "structured:0.5:round_to=8:finetune=10",
        "structured:0.5:round_to=8:finetune=10+int8-static",
        "int8-static",
        "lowrank:0.5:finetune=5",
        "drop-layers:1:finetune=5",
        "int4-weight",
    ]
    no_training = SpaceFacts(torch_source=True, trains=False, has_matmuls=True)
    assert all("finetune" not in key for params in first_points(families, no_training) for key in params)


RULES = AcceptanceRules(max_accuracy_drop=0.02)


def test_quality_is_scored_and_its_excess_over_the_limit_is_the_constraint() -> None:
    base, worse = {"metric": "accuracy", "accuracy": 0.98}, {"metric": "accuracy", "accuracy": 0.95}
    assert quality_score(worse, RULES) == 0.95
    assert quality_excess(worse, base, RULES) == pytest.approx(0.01)  # 3 pts lost, 2 allowed
    assert quality_excess({"metric": "accuracy", "accuracy": 0.97}, base, RULES) == pytest.approx(-0.01)
    task = {"metric": "task", "score": 0.5}
    assert quality_score(task, RULES) == 0.5
    # without labels: the fidelity measure that judges the output, against its threshold
    boxes = {"metric": "fidelity", "auto_measure": "cosine", "mean_cosine": 0.97, "top1_agreement": None}
    assert quality_score(boxes, RULES) == 0.97
    assert quality_excess(boxes, {"metric": "fidelity"}, RULES) == pytest.approx(RULES.min_cosine - 0.97)
    assert quality_score(None, RULES) is None and quality_excess(None, None, RULES) == 0.0


def _timed(number: int, recipe: str, low: float, quality: float, decision: str = "ACCEPT") -> SearchTrial:
    cell = {
        "speedup": {"ratio": low + 0.1, "ci_low": low, "ci_high": low + 0.2},
        "verdict": {"decision": decision, "reasons": [] if decision == "ACCEPT" else [{"code": "MEMORY_GREW"}]},
    }
    metric = {"metric": "accuracy", "accuracy": quality}
    return SearchTrial(number, recipe, "structured", "timed", 5.0, metric, quality, 0.99, cell=cell)


def test_the_front_keeps_what_nothing_beats_on_both_and_the_best_is_the_fastest_accepted() -> None:
    trials = [
        _timed(0, "a", 1.5, 0.97),
        _timed(1, "b", 2.0, 0.96),
        _timed(2, "c", 1.4, 0.96),  # beaten by a and b
        _timed(3, "d", 2.5, 0.90, decision="REJECT"),
        SearchTrial(4, "e", "structured", "cut_by_quality", 3.0, quality_score=0.5, quality_excess=0.4),
        _timed(5, "b", 2.0, 0.96),  # a repeat of b: once on the front
    ]
    trials[5] = SearchTrial(**{**trials[5].as_dict(), "repeat_of": 1})
    assert [trial.recipe for trial in pareto_front(trials)] == ["d", "b", "a"]
    best = best_accepted(trials)
    assert best is not None and best.recipe == "b"  # d is faster but rejected
    assert best_accepted([trials[3], trials[4]]) is None
    assert trials[3].constraints() == {"quality": 0.0, "memory": 1.0}
    assert trials[4].constraints()["quality"] == 0.4


def test_a_trial_reads_back_from_what_it_stored_and_says_what_became_of_it() -> None:
    trial = _timed(7, "structured:0.3", 1.25, 0.975)
    assert SearchTrial.from_dict({**trial.as_dict(), "added_later": 1}) == trial
    assert trial_line(trial) == "top-1 97.5% (-1.5 pts) -> 1.35x [1.25, 1.45] ACCEPT"
    cut = SearchTrial(1, "x", "structured", "cut_by_quality", 1.0, {"metric": "accuracy"}, 0.99, 0.99)
    assert trial_line(cut) == "top-1 99.0% (0.0 pts): cut by quality, not timed"


def test_a_trial_is_not_started_when_its_familys_longest_would_run_past_the_budget() -> None:
    trials = [
        SearchTrial(0, "a", "structured", "timed", 40.0),
        SearchTrial(1, "b", "structured", "cut_by_quality", 10.0),
        SearchTrial(2, "c", "int8", "timed", 6.0),
        SearchTrial(3, "d", "int8", "interrupted", 0.0),
    ]
    assert expected_trial_s(trials, "structured") == 40.0
    assert expected_trial_s(trials, "int8") == 6.0
    assert expected_trial_s(trials, "lowrank") == 10.0  # unseen family: the median trial
    assert expected_trial_s([], "int8") is None  # nothing measured yet: it starts


def test_a_pruning_point_steps_toward_the_quality_limit() -> None:
    point = {"family": "structured", "structured.ratio": 0.5, "structured.round_to": 8}
    assert neighbour(point, gentler=True, facts=CNN_WITH_DATA) == {**point, "structured.ratio": 0.4}
    assert neighbour(point, gentler=False, facts=CNN_WITH_DATA) == {**point, "structured.ratio": 0.6}
    assert neighbour({**point, "structured.ratio": 0.2}, gentler=True, facts=CNN_WITH_DATA) is None  # the end
    # a smaller rank is stronger; fewer dropped layers are gentler
    assert neighbour({"family": "lowrank", "lowrank.rank": 0.5}, True, CNN_WITH_DATA) == {
        "family": "lowrank",
        "lowrank.rank": 0.625,
    }
    assert neighbour({"family": "drop-layers", "drop-layers.layers": 2}, True, TRANSFORMER) == {
        "family": "drop-layers",
        "drop-layers.layers": 1,
    }
    assert neighbour({"family": "int8", "int8.int8": "static"}, True, CNN_WITH_DATA) is None


def test_a_point_cut_by_quality_is_also_tried_with_longer_fine_tuning() -> None:
    point = {"family": "structured", "structured.ratio": 0.5, "structured.finetune": 2, "structured.distill": True}
    assert more_recovery(point, CNN_WITH_DATA) == {**point, "structured.finetune": 5}
    assert more_recovery({**point, "structured.finetune": 10}, CNN_WITH_DATA) is None  # the longest already
    assert more_recovery({"family": "structured", "structured.finetune": 0}, CNN_WITH_DATA) == {
        "family": "structured",
        "structured.finetune": 2,
        "structured.distill": False,
    }
    assert more_recovery(point, SpaceFacts(torch_source=True, trains=False)) is None


def test_the_steps_after_a_trial_follow_what_became_of_it() -> None:
    point = {"family": "structured", "structured.ratio": 0.5, "structured.finetune": 5, "structured.distill": False}
    cut = SearchTrial(0, "r", "structured", "cut_by_quality", 1.0, quality_excess=0.02)
    assert _next_steps(point, cut, CNN_WITH_DATA) == [
        {**point, "structured.ratio": 0.4},
        {**point, "structured.finetune": 10},
    ]
    faster = _timed(1, "r", 1.05, 0.99)  # held quality, ran faster: one step stronger
    assert _next_steps(point, faster, CNN_WITH_DATA) == [{**point, "structured.ratio": 0.6}]
    slower = _timed(2, "r", 0.7, 0.99, decision="REJECT")
    slower = SearchTrial(**{**slower.as_dict(), "cell": {"speedup": {"ratio": 0.8, "ci_low": 0.7, "ci_high": 0.9}}})
    assert _next_steps(point, slower, CNN_WITH_DATA) == []  # stronger rarely turns slower into faster
    repeat = SearchTrial(**{**cut.as_dict(), "repeat_of": 0})
    assert _next_steps(point, repeat, CNN_WITH_DATA) == []
