"""The host's state during an A/B run: block levels, whether the host moved, and this host's usual
level of an artifact kept across runs (a real A/B of tiny models: a run away from the usual level is
held back and ends UNUSUAL_HOST_STATE, one at it decides)."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

from harness.measure import host_state
from harness.measure.ab_pair import PairStop, StopRule, run_ab_pair
from harness.measure.host_state import HISTORY_KEEP, HISTORY_MIN_RUNS, HostState, LevelHistory
from harness.verdict.policy import Policy
from tests.helpers import FAST_POLICY, cell_request

SCHEDULE = Policy.from_dict(FAST_POLICY).schedule


def test_blocks_at_different_levels_say_the_host_moved():
    assert HostState((0.13, 0.131, 0.129)).moved() is False
    moved = HostState((0.13, 0.18, 0.13))
    assert moved.moved() and "0.13 ms to 0.18 ms" in moved.text()
    assert HostState((0.13,)).moved() is False


def test_unusual_blocks_are_counted_against_the_usual_level_only_once_there_is_one():
    assert HostState((0.18, 0.19)).all_unusual() is False  # no history: nothing is unusual
    away = HostState((0.18, 0.19), usual=0.14, usual_runs=5)
    assert away.all_unusual() and away.unusual_blocks() == 2
    back = HostState((0.18, 0.142), usual=0.14, usual_runs=5)
    assert not back.all_unusual() and back.unusual_blocks() == 1
    assert away.as_dict()["unusual_blocks"] == 2 and away.as_dict()["usual"] == 0.14
    assert away.shift_factor() == pytest.approx(0.185 / 0.14) and back.shift_factor() == 1.0
    faster = HostState((0.1, 0.1), usual=0.14, usual_runs=5)
    assert faster.shift_factor() == pytest.approx(1.4)  # away on the fast side counts alike


def test_the_history_keeps_the_latest_levels_and_knows_the_usual_one_after_enough_runs(tmp_path, tiny_conv_onnx):
    history = LevelHistory.for_artifact(str(tiny_conv_onnx), "host", {"threads": 2}, folder=tmp_path)
    for level in range(1, HISTORY_MIN_RUNS):
        history.add(float(level))
    assert history.usual() == (None, HISTORY_MIN_RUNS - 1)
    history.add(100.0)
    usual, runs = history.usual()
    assert runs == HISTORY_MIN_RUNS and usual == 2.0
    for _ in range(HISTORY_KEEP + 5):
        history.add(7.0)
    assert history.levels() == [7.0] * HISTORY_KEEP
    # the key: the artifact's content and the settings; another thread count is another history
    other = LevelHistory.for_artifact(str(tiny_conv_onnx), "host", {"threads": 1}, folder=tmp_path)
    assert other.path != history.path and other.levels() == []


@pytest.mark.parametrize("content", ["not json", '{"level": 1}', '[{"level": "x"}, {"level": -1}, 5]'])
def test_a_damaged_or_foreign_history_is_ignored_and_left_as_it_is(tmp_path, content):
    history = LevelHistory(tmp_path, "key")
    history.path.write_text(content)
    assert history.levels() == []
    history.add(3.0)  # no error
    assert history.path.read_text() == content  # not speedproof's: never replaced


def test_damaged_entries_of_a_history_are_left_out(tmp_path):
    history = LevelHistory(tmp_path, "key")
    history.add(3.0)
    stored = json.loads(history.path.read_text())
    stored["levels"] += [{"level": "x"}, {"level": -1}, 5]
    history.path.write_text(json.dumps(stored))
    assert history.levels() == [3.0]


def test_a_history_that_is_a_link_is_neither_read_nor_followed(tmp_path):
    victim = tmp_path / "victim.json"
    victim.write_text(json.dumps([{"level": 1.0}] * 5))
    history = LevelHistory(tmp_path, "key")
    os.symlink(victim, history.path)
    assert history.levels() == []
    history.add(2.0)
    assert json.loads(victim.read_text()) == [{"level": 1.0}] * 5  # its target untouched
    assert history.path.is_symlink()


def test_a_read_only_cache_costs_the_history_not_the_run(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        LevelHistory(folder, "key").add(1.0)  # no error
    finally:
        folder.chmod(0o700)


def test_a_run_away_from_the_usual_level_widens_its_interval_and_one_at_it_decides(
    tmp_path, tiny_conv_onnx, monkeypatch
):
    request = cell_request(tiny_conv_onnx)
    schedule = replace(SCHEDULE, max_pair_duration_s=3.0)
    rule = StopRule(min_speedup=3.0, confidence=0.95)  # A/A: a clear "below" as soon as a look may decide
    first = run_ab_pair(request, request, schedule, rule, _runner(), load_timeout_s=120)
    assert first.status == "ok" and first.stopped_by == PairStop.BELOW and first.host_state is not None
    level = first.host_state.level

    far = LevelHistory(tmp_path / "far", "key")
    for _ in range(HISTORY_MIN_RUNS):
        far.add(level * 10)  # this host "usually" runs the baseline ten times slower
    held = run_ab_pair(request, request, schedule, rule, _runner(), load_timeout_s=120, history=far)
    # 10x away: the interval widened tenfold never clears 3.0 nor falls below it: out of time, INCONCLUSIVE's stop
    assert held.status == "ok" and held.stopped_by == PairStop.UNUSUAL_HOST_STATE
    # the history keeps levels to 6 decimals (ms): the usual level is level * 10 to that precision
    assert held.host_state.usual == pytest.approx(level * 10, rel=1e-4) and held.host_state.all_unusual()
    assert (
        held.speedup.widened_by == pytest.approx(held.host_state.shift_factor(), rel=1e-3)
        and held.speedup.widened_by > 5
    )
    assert held.duration_s > first.duration_s  # it measured on, to the budget, hoping for the usual state
    assert len(far.levels()) == HISTORY_MIN_RUNS + 1  # its own level added

    # this host's own state moves between the runs of a test (0.052 ms in the first run, 0.0245 ms in this one,
    # under a full suite): "at the usual level" here is within 5x, still far inside the 10x case above
    monkeypatch.setattr(host_state, "HOST_STATE_MARGIN", 4.0)
    near = LevelHistory(tmp_path / "near", "key")
    for _ in range(HISTORY_MIN_RUNS):
        near.add(level)
    decided = run_ab_pair(request, request, schedule, rule, _runner(), load_timeout_s=120, history=near)
    assert decided.stopped_by == PairStop.BELOW and not decided.host_state.all_unusual()
    assert decided.speedup.widened_by == 1.0


def _runner():
    from targets.runners.local import LocalRunner

    return LocalRunner()


def test_one_outlying_block_is_not_a_state_but_two_levels_are():
    assert not HostState((0.13, 0.131, 0.2, 0.13, 0.129, 0.132)).moved()  # one burst's scatter
    assert HostState((0.13, 0.131, 0.2, 0.19, 0.129, 0.132)).moved()  # two blocks in another state
