"""The verification policy, in two parts: the acceptance rules (what a variant must show on a target
to be accepted) and the A/B schedule (what is measured and for how long).

A policy is data, merged from four layers (later wins): built-in defaults, the target profile's
`[policy]` table, a `--policy` TOML file, and CLI overrides. On disk and on the command line it is
one flat table of keys; help text lives beside each field and the CLI and the docs take it from
there. Every key is validated strictly: an unknown key names the file and the nearest valid key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness.measure.schedule import DECODER_METRICS, ABSchedule, invalid_policy, not_finite
from targets.errors import ConfigurationError, SpeedproofError, UsageError, did_you_mean
from targets.toml_files import read_toml_file

FIDELITY_MEASURES = ("auto", "top1", "cosine", "snr_db")


@dataclass(frozen=True)
class AcceptanceRules:
    """What a variant must show to be accepted, and what counts as a regression in the gate."""

    min_speedup: float = field(
        default=1.10, metadata={"help": "the lower end of the speedup interval must reach this to accept"}
    )
    confidence: float = field(default=0.95, metadata={"help": "confidence level of the speedup interval"})
    max_accuracy_drop: float = field(
        default=0.01,
        metadata={"help": "largest absolute top-1 accuracy drop allowed, when the source has labelled data"},
    )
    max_perplexity_increase: float = field(
        default=0.05,
        metadata={
            "help": "a decoder with text to measure on (--data text, pydoc-lm's held-out topics): the largest "
            "relative perplexity increase over the baseline's allowed (0.05: 5%%)"
        },
    )
    min_fidelity: float = field(
        default=0.99,
        metadata={
            "help": "without labels: the smallest top-1 agreement with the baseline's first output, when "
            "fidelity_measure is top1; 0 disables every fidelity check"
        },
    )
    fidelity_measure: str = field(
        default="auto",
        metadata={
            "help": "how closeness to the baseline's first output is judged without labels: top1 (class scores), "
            "cosine (mean cosine similarity, min_cosine), snr_db (signal-to-noise ratio, min_snr_db), or auto: "
            "top1 for [batch, classes] outputs, cosine for any other (boxes, maps, embeddings, sequences)",
            "choices": FIDELITY_MEASURES,
        },
    )
    min_cosine: float = field(
        default=0.99, metadata={"help": "fidelity_measure cosine: the smallest mean cosine similarity allowed"}
    )
    min_snr_db: float = field(
        default=20.0, metadata={"help": "fidelity_measure snr_db: the smallest signal-to-noise ratio (dB) allowed"}
    )
    min_channel_snr_db: float = field(
        default=3.0,
        metadata={
            "help": "without labels: the smallest standardized SNR (dB) of any one channel of an output against "
            "the baseline's (its variation over the variant's error): a head whose values collapse (a detector's "
            "class scores zeroed by one int8 scale) fails it while the whole tensor's cosine holds"
        },
    )
    max_memory_ratio: float = field(
        default=1.10, metadata={"help": "largest peak-RSS ratio variant / baseline allowed"}
    )
    max_regression: float = field(
        default=0.05,
        metadata={"help": "gate --baseline: a speedup this much (relative) below the stored one is a regression"},
    )

    def __post_init__(self) -> None:
        problems = not_finite(self)
        if problems:
            invalid_policy(problems)
        if self.min_speedup <= 0:
            problems.append(f"min_speedup = {self.min_speedup}; must be > 0 (1.10 asks for 10% faster)")
        if not 0.5 <= self.confidence < 1.0:
            problems.append(f"confidence = {self.confidence}; must lie in [0.5, 1)")
        if not 0.0 <= self.max_accuracy_drop <= 1.0:
            problems.append(f"max_accuracy_drop = {self.max_accuracy_drop}; must lie in [0, 1] (absolute, 0.01 = 1 pt)")
        if not 0.0 <= self.max_perplexity_increase <= 100.0:
            problems.append(
                f"max_perplexity_increase = {self.max_perplexity_increase}; must lie in [0, 100] (relative, 0.05 = 5%)"
            )
        if not 0.0 <= self.min_fidelity <= 1.0:
            problems.append(f"min_fidelity = {self.min_fidelity}; must lie in [0, 1] (0 disables)")
        if self.fidelity_measure not in FIDELITY_MEASURES:
            problems.append(
                f"fidelity_measure = {self.fidelity_measure!r}"
                f"{did_you_mean(self.fidelity_measure, FIDELITY_MEASURES)}; valid: {', '.join(FIDELITY_MEASURES)}"
            )
        if not -1.0 <= self.min_cosine <= 1.0:
            problems.append(f"min_cosine = {self.min_cosine}; must lie in [-1, 1]")
        if self.max_memory_ratio <= 0:
            problems.append(f"max_memory_ratio = {self.max_memory_ratio}; must be > 0")
        if not 0.0 <= self.max_regression < 1.0:
            problems.append(f"max_regression = {self.max_regression}; must lie in [0, 1)")
        invalid_policy(problems)


# the flat order of keys in records, --help and the docs
POLICY_KEYS = (
    "metric",
    "batch_size",
    "min_speedup",
    "confidence",
    "max_accuracy_drop",
    "max_perplexity_increase",
    "min_fidelity",
    "fidelity_measure",
    "min_cosine",
    "min_snr_db",
    "min_channel_snr_db",
    "max_memory_ratio",
    "max_pair_duration_s",
    "burst_duration_s",
    "min_pairs",
    "fresh_workers_below_ms",
    "min_span_s",
    "throughput_batch_size",
    "probe_batch_size",
    "max_regression",
)
_SCHEDULE_KEYS = frozenset(item.name for item in fields(ABSchedule))


@dataclass(frozen=True)
class Policy:
    """The acceptance rules and the A/B schedule of one verification; flat on disk."""

    rules: AcceptanceRules = field(default_factory=AcceptanceRules)
    schedule: ABSchedule = field(default_factory=ABSchedule)

    def as_dict(self) -> dict[str, Any]:
        return {key: getattr(self.schedule if key in _SCHEDULE_KEYS else self.rules, key) for key in POLICY_KEYS}

    def with_values(self, values: Mapping[str, Any]) -> Policy:
        """This policy with some flat keys changed (validated)."""
        schedule = {key: value for key, value in values.items() if key in _SCHEDULE_KEYS}
        rules = {key: value for key, value in values.items() if key not in _SCHEDULE_KEYS}
        return Policy(
            rules=replace(self.rules, **rules) if rules else self.rules,
            schedule=replace(self.schedule, **schedule) if schedule else self.schedule,
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Policy:
        return cls().with_values({key: value for key, value in values.items() if key in POLICY_KEYS})


def policy_fields() -> dict[str, Any]:
    """Flat key -> dataclass field, in POLICY_KEYS order (for the CLI and the docs)."""
    every = {item.name: item for part in (ABSchedule, AcceptanceRules) for item in fields(part)}
    return {key: every[key] for key in POLICY_KEYS}


def _expected_type(name: str) -> type:
    return {"str": str, "int": int, "float": float}[str(policy_fields()[name].type)]


def check_policy_table(table: Any, where: str) -> dict[str, Any]:
    """Validate the keys and types of a `[policy]` table; return it as overrides. `where` names the
    file (and table) for error messages."""
    if not isinstance(table, dict):
        raise ConfigurationError(f"{where}: [policy] must be a table of keys, got {type(table).__name__}")
    known = policy_fields()
    overrides: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigurationError(
                f"{where}: unknown policy key {key!r}{did_you_mean(key, known)}; valid keys: {', '.join(known)}"
            )
        expected = _expected_type(key)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ConfigurationError(
                f"{where}: policy.{key} = {value!r} has the wrong type; expected {expected.__name__} "
                f"({known[key].metadata['help']})"
            )
        overrides[key] = value
    return overrides


def apply_overrides(
    policy: Policy, overrides: Mapping[str, Any], where: str, kind: type[SpeedproofError] = ConfigurationError
) -> Policy:
    """`policy` with `overrides` applied; a value out of range names `where` it came from, as a `kind`
    error (a file's: ConfigurationError; the options', on the command line or the API's: UsageError)."""
    if not overrides:
        return policy
    try:
        return policy.with_values(overrides)
    except SpeedproofError as error:
        raise kind(f"{where}: {error}") from None


def load_policy_overrides(path: Path) -> dict[str, Any]:
    """The `[policy]` table of a policy file (the only table it may have)."""
    data = read_toml_file(path, "policy")
    for key in data:
        if key != "policy":
            raise ConfigurationError(
                f"{path}: unknown table or key {key!r}{did_you_mean(key, ['policy'])}; a policy file holds one "
                "[policy] table"
            )
    if "policy" not in data:
        raise ConfigurationError(f"{path}: no [policy] table; write the keys under a [policy] header")
    return check_policy_table(data["policy"], str(path))


def build_policy(
    profile_policy: Mapping[str, Any] | None = None,
    policy_file: Path | None = None,
    cli_overrides: Mapping[str, Any] | None = None,
    file_overrides: Mapping[str, Any] | None = None,
    file_label: str = "policy file",
    profile_label: str = "target profile",
) -> Policy:
    """Defaults, then the profile's defaults, then the file's keys, then the CLI's."""
    where = f"{profile_label} [policy]"
    policy = apply_overrides(Policy(), check_policy_table(dict(profile_policy or {}), where), where)
    if policy_file is not None:
        policy = apply_overrides(policy, load_policy_overrides(policy_file), str(policy_file))
    if file_overrides:
        policy = apply_overrides(policy, file_overrides, file_label)
    given = {k: v for k, v in (cli_overrides or {}).items() if v is not None}
    return apply_overrides(policy, given, "command line", kind=UsageError)


def target_policy(profile: Any, policy_file: Path | None = None, decoder: bool = False, **layers: Any) -> Policy:
    """`build_policy` with the profile's `[policy]` table, named by the profile's file in errors; its metric
    checked against the model's kind (`metric_for_model`)."""
    return metric_for_model(build_policy(profile.policy, policy_file, profile_label=profile.source, **layers), decoder)


def metric_for_model(policy: Policy, decoder: bool) -> Policy:
    """A decoder is judged on a phase (p50, the default, becomes decode_ms_per_token); any other model on a
    latency percentile or throughput. A metric of the other kind is a UsageError saying which apply."""
    metric = policy.schedule.metric
    if decoder and metric not in DECODER_METRICS:
        if metric == "p50":
            return policy.with_values({"metric": "decode_ms_per_token"})
        raise UsageError(
            f"metric = {metric!r} judges one forward pass; a generative decoder is judged on a phase: "
            f"{', '.join(DECODER_METRICS)}"
        )
    if not decoder and metric in DECODER_METRICS:
        raise UsageError(
            f"metric = {metric!r} judges a phase of a generative decoder (a Hugging Face or ONNX Runtime GenAI "
            "folder, or a zoo decoder); for this model use p50, p90, p99 or throughput"
        )
    return policy
