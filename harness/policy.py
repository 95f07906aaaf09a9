"""The verification policy: what a variant must show on a target to be accepted.

A policy is data, merged from four layers (later wins): built-in defaults, the target profile's
`[policy]` table, a `--policy` TOML file, and CLI overrides. Help text lives beside each field;
the CLI and the docs take it from there. Every key is validated strictly: an unknown key names
the file and the nearest valid key.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness.errors import SpeedproofError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

METRICS = ("p50", "p90", "p99", "throughput")


@dataclass(frozen=True)
class Policy:
    metric: str = field(
        default="p50",
        metadata={
            "help": "what the speedup is measured on: p50 | p90 | p99 latency, or throughput (items/s)",
            "choices": METRICS,
        },
    )
    batch_size: int = field(default=1, metadata={"help": "batch size of the A/B comparison"})
    min_speedup: float = field(
        default=1.10, metadata={"help": "the lower end of the speedup interval must reach this to accept"}
    )
    confidence: float = field(default=0.95, metadata={"help": "confidence level of the speedup interval"})
    max_accuracy_drop: float = field(
        default=0.01,
        metadata={"help": "largest absolute top-1 accuracy drop allowed, when the source has labelled data"},
    )
    min_fidelity: float = field(
        default=0.99,
        metadata={"help": "smallest top-1 agreement with the baseline when the source has no labels; 0 disables"},
    )
    max_memory_ratio: float = field(
        default=1.10, metadata={"help": "largest peak-RSS ratio variant / baseline allowed"}
    )
    max_pair_duration_s: float = field(
        default=120.0,
        metadata={"help": "time budget of one A/B pair; out of time with the interval on the threshold: INCONCLUSIVE"},
    )
    burst_duration_s: float = field(
        default=0.5, metadata={"help": "length of one timed burst of each side of an A/B pair"}
    )
    min_pairs: int = field(default=5, metadata={"help": "burst pairs measured before the interval may stop the pair"})
    probe_batch_size: int = field(
        default=0,
        metadata={
            "help": "when > 0, a variant with fewer MACs that misses the threshold is also compared at this batch "
            "size, to show whether its gain appears only at larger batches; 0 = off"
        },
    )
    max_regression: float = field(
        default=0.05,
        metadata={"help": "gate --baseline: a speedup this much (relative) below the stored one is a regression"},
    )

    def __post_init__(self) -> None:
        problems = policy_problems(self)
        if problems:
            raise SpeedproofError("invalid policy: " + "; ".join(problems))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_latency(self) -> bool:
        return self.metric != "throughput"


def policy_problems(policy: Policy) -> list[str]:
    """Every value that is out of range, each with what would be valid."""
    problems = []
    if policy.metric not in METRICS:
        suggestion = did_you_mean(policy.metric, METRICS)
        problems.append(f"metric = {policy.metric!r}{suggestion}; valid: {', '.join(METRICS)}")
    if policy.batch_size < 1:
        problems.append(f"batch_size = {policy.batch_size}; must be >= 1")
    if policy.min_speedup <= 0:
        problems.append(f"min_speedup = {policy.min_speedup}; must be > 0 (1.10 asks for 10% faster)")
    if not 0.5 <= policy.confidence < 1.0:
        problems.append(f"confidence = {policy.confidence}; must lie in [0.5, 1)")
    if not 0.0 <= policy.max_accuracy_drop <= 1.0:
        problems.append(f"max_accuracy_drop = {policy.max_accuracy_drop}; must lie in [0, 1] (absolute, 0.01 = 1 pt)")
    if not 0.0 <= policy.min_fidelity <= 1.0:
        problems.append(f"min_fidelity = {policy.min_fidelity}; must lie in [0, 1] (0 disables)")
    if policy.max_memory_ratio <= 0:
        problems.append(f"max_memory_ratio = {policy.max_memory_ratio}; must be > 0")
    if policy.burst_duration_s <= 0:
        problems.append(f"burst_duration_s = {policy.burst_duration_s}; must be > 0")
    if policy.min_pairs < 2:
        problems.append(f"min_pairs = {policy.min_pairs}; must be >= 2 (an interval needs pairs to resample)")
    if policy.max_pair_duration_s < policy.burst_duration_s * 2 * policy.min_pairs:
        problems.append(
            f"max_pair_duration_s = {policy.max_pair_duration_s} leaves no room for min_pairs = {policy.min_pairs} "
            f"pairs of {policy.burst_duration_s} s bursts; raise it to at least "
            f"{policy.burst_duration_s * 2 * policy.min_pairs:g}"
        )
    if policy.probe_batch_size < 0:
        problems.append(f"probe_batch_size = {policy.probe_batch_size}; must be >= 0 (0 = off)")
    if not 0.0 <= policy.max_regression < 1.0:
        problems.append(f"max_regression = {policy.max_regression}; must lie in [0, 1)")
    return problems


def policy_fields() -> dict[str, Any]:
    """Field name -> dataclass field, in declaration order (for the CLI and the docs)."""
    return {item.name: item for item in fields(Policy)}


def _expected_type(name: str) -> type:
    return {"str": str, "int": int, "float": float}[str(policy_fields()[name].type)]


def check_policy_table(table: Any, where: str) -> dict[str, Any]:
    """Validate the keys and types of a `[policy]` table; return it as overrides. `where` names the
    file (and table) for error messages."""
    if not isinstance(table, dict):
        raise SpeedproofError(f"{where}: [policy] must be a table of keys, got {type(table).__name__}")
    known = policy_fields()
    overrides: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise SpeedproofError(
                f"{where}: unknown policy key {key!r}{did_you_mean(key, known)}; valid keys: {', '.join(known)}"
            )
        expected = _expected_type(key)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise SpeedproofError(
                f"{where}: policy.{key} = {value!r} has the wrong type; expected {expected.__name__} "
                f"({known[key].metadata['help']})"
            )
        overrides[key] = value
    return overrides


def apply_overrides(policy: Policy, overrides: Mapping[str, Any], where: str) -> Policy:
    """`policy` with `overrides` applied; a value out of range names `where` it came from."""
    if not overrides:
        return policy
    try:
        return replace(policy, **overrides)
    except SpeedproofError as error:
        raise SpeedproofError(f"{where}: {error}") from None


def read_toml_file(path: Path, what: str) -> dict[str, Any]:
    """Parse a TOML file; missing or invalid files are errors naming the file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpeedproofError(f"{what} file not found: {path}") from None
    except OSError as error:
        raise SpeedproofError(f"cannot read {what} {path}: {error}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpeedproofError(f"{path}: not valid TOML: {error}") from None


def load_policy_overrides(path: Path) -> dict[str, Any]:
    """The `[policy]` table of a policy file (the only table it may have)."""
    data = read_toml_file(path, "policy")
    for key in data:
        if key != "policy":
            raise SpeedproofError(
                f"{path}: unknown table or key {key!r}{did_you_mean(key, ['policy'])}; a policy file holds one "
                "[policy] table"
            )
    if "policy" not in data:
        raise SpeedproofError(f"{path}: no [policy] table; write the keys under a [policy] header")
    return check_policy_table(data["policy"], str(path))


def build_policy(
    profile_policy: Mapping[str, Any] | None = None,
    policy_file: Path | None = None,
    cli_overrides: Mapping[str, Any] | None = None,
    file_overrides: Mapping[str, Any] | None = None,
    file_label: str = "policy file",
) -> Policy:
    """Defaults, then the profile's defaults, then the file's keys, then the CLI's."""
    policy = Policy()
    policy = apply_overrides(policy, profile_policy or {}, "target profile [policy]")
    if policy_file is not None:
        policy = apply_overrides(policy, load_policy_overrides(policy_file), str(policy_file))
    if file_overrides:
        policy = apply_overrides(policy, file_overrides, file_label)
    return apply_overrides(policy, {k: v for k, v in (cli_overrides or {}).items() if v is not None}, "command line")
