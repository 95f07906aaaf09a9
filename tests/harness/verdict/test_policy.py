"""Policy files, profile defaults and CLI overrides: layering and strict validation."""

import pytest

from harness.verdict.policy import Policy, build_policy, load_policy_overrides, target_policy
from targets.errors import SpeedproofError
from targets.profiles import load_profile_file, load_target


def _write(tmp_path, text, name="policy.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_match_the_documented_policy():
    schedule, rules = Policy().schedule, Policy().rules
    assert (schedule.metric, schedule.batch_size, rules.min_speedup, rules.confidence) == ("p50", 1, 1.10, 0.95)
    assert (rules.max_accuracy_drop, rules.min_fidelity, rules.max_memory_ratio) == (0.01, 0.99, 1.10)
    assert schedule.max_pair_duration_s == 30


def test_layers_apply_in_order_profile_then_file_then_command_line(tmp_path):
    path = _write(tmp_path, "[policy]\nmin_speedup = 1.3\nmetric = 'p90'\n")
    policy = build_policy(
        profile_policy={"metric": "throughput", "batch_size": 64, "min_speedup": 1.2},
        policy_file=path,
        cli_overrides={"min_speedup": 1.5, "confidence": None},
    )
    assert policy.schedule.batch_size == 64  # from the profile
    assert policy.schedule.metric == "p90"  # the file beats the profile
    assert policy.rules.min_speedup == 1.5  # the command line beats the file
    assert policy.rules.confidence == 0.95  # None: not given on the command line


def test_unknown_key_names_the_file_and_suggests_the_nearest(tmp_path):
    path = _write(tmp_path, "[policy]\nmin_speedupp = 1.2\n")
    expected = r'policy.toml: unknown policy key .min_speedupp. \(did you mean "min_speedup"'
    with pytest.raises(SpeedproofError, match=expected):
        load_policy_overrides(path)


def test_wrong_types_and_ranges_say_what_is_valid(tmp_path):
    with pytest.raises(SpeedproofError, match=r"policy.min_speedup = 'fast' has the wrong type; expected float"):
        load_policy_overrides(_write(tmp_path, "[policy]\nmin_speedup = 'fast'\n"))
    with pytest.raises(SpeedproofError, match=r"policy.toml: invalid policy: confidence = 1.5; must lie in \[0.5, 1\)"):
        build_policy(policy_file=_write(tmp_path, "[policy]\nconfidence = 1.5\n"))
    with pytest.raises(SpeedproofError, match=r"metric = 'p95'.*valid: p50, p90, p99, throughput"):
        build_policy(cli_overrides={"metric": "p95"})
    two = build_policy(policy_file=_write(tmp_path, "[policy]\nmin_speedup = 2\n"))
    assert two.rules.min_speedup == 2.0  # int is fine


def test_a_policy_file_holds_only_a_policy_table(tmp_path):
    with pytest.raises(SpeedproofError, match=r"unknown table or key 'polcy' \(did you mean \"policy\"\?\)"):
        load_policy_overrides(_write(tmp_path, "[polcy]\nmin_speedup = 1.2\n"))
    with pytest.raises(SpeedproofError, match="not valid TOML"):
        load_policy_overrides(_write(tmp_path, "[policy\n"))
    with pytest.raises(SpeedproofError, match="policy file not found"):
        load_policy_overrides(tmp_path / "missing.toml")


def test_the_time_budget_must_hold_the_minimum_pairs():
    with pytest.raises(SpeedproofError, match="max_pair_duration_s = 2.0 leaves no room"):
        Policy().with_values({"max_pair_duration_s": 2.0, "burst_duration_s": 0.5, "min_pairs": 5})


def test_profiles_carry_policy_defaults_and_they_are_validated(tmp_path):
    assert load_target("cuda-gpu").policy == {"metric": "p50", "batch_size": 1, "throughput_batch_size": 64}
    assert load_target("x86-cpu").policy == {}
    text = load_target("x86-cpu").source
    broken = tmp_path / "mine.toml"
    broken.write_text(open(text).read() + "\n[policy]\nbatch_size = 0\n")
    # the profile is data to targets; harness validates its [policy] when it builds the policy
    with pytest.raises(SpeedproofError, match=r"mine.toml \[policy\]: invalid policy: batch_size = 0"):
        target_policy(load_profile_file(broken))
