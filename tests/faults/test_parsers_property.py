"""Property-based pass over every parser of user input: the recipe grammar, policy tables, gate
configs, target profiles and the record loader either parse what they are given or raise the
project's error, SpeedproofError, never anything else."""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness.cli import EXIT_OK, EXIT_USAGE, main
from harness.recipes.grammar import parse_recipe_list
from harness.records.store import load_record
from harness.verdict.gate import parse_gate_config
from harness.verdict.policy import apply_overrides, build_policy, check_policy_table
from targets.errors import SpeedproofError
from targets.profiles import parse_profile

# a fixed sample, the same on every run, so a landing never depends on the draw; SPEEDPROOF_EXPLORE=1 draws
# new inputs (then add what it finds as an @example)
RUNS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=not os.environ.get("SPEEDPROOF_EXPLORE"),
)
RECIPE_WORDS = [
    "structured",
    "unstructured",
    "int8-dynamic",
    "int8-static",
    "identity",
    "baseline",
    "lowrank",
    "2:4",
    "fp16",
    "round_to",
    "finetune",
    "layers",
    "drop-layers",
    "int4-weight",
    "steps",
    "distill",
    "temperature",
    "alpha",
    "keep",
    "block_size",
]
recipe_text = st.lists(
    st.one_of(
        st.sampled_from(RECIPE_WORDS),
        st.text(string.printable, max_size=6),
        st.sampled_from([":", "=", "+", ",", "0.5", "1e309", "nan", "-1", "8", " "]),
    ),
    max_size=8,
).map("".join)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10)
)
toml_values = st.recursive(
    scalars.filter(lambda value: value is not None),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
POLICY_KEYS = [
    "min_speedup",
    "confidence",
    "metric",
    "batch_size",
    "burst_duration_s",
    "min_pairs",
    "max_pair_duration_s",
    "min_span_s",
    "max_regression",
    "probe_batch_size",
    "throughput_batch_size",
    "min_fidelity",
    "fidelity_measure",
    "min_cosine",
    "min_snr_db",
]


def _parses_or_speedproof_error(function, *args) -> None:
    try:
        function(*args)
    except SpeedproofError:
        pass


@RUNS
@given(st.lists(recipe_text, min_size=1, max_size=3))
def test_recipe_lists(texts):
    _parses_or_speedproof_error(parse_recipe_list, texts)


def _policy(table):
    apply_overrides(build_policy(), check_policy_table(table, "policy.toml"), "policy.toml")


@RUNS
@given(st.one_of(toml_values, st.dictionaries(st.sampled_from(POLICY_KEYS), scalars.filter(lambda v: v is not None))))
def test_policy_tables(table):
    _parses_or_speedproof_error(_policy, table)


check_tables = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(st.sampled_from(["resnet18", "missing.onnx", "pkg.mod:fn", "x.pt", ""]), toml_values),
        "recipes": st.one_of(st.lists(recipe_text, max_size=3), toml_values),
        "required": st.one_of(st.lists(st.sampled_from(["identity", "structured:0.5"]), max_size=2), toml_values),
        "targets": st.one_of(st.lists(st.sampled_from(["x86-cpu", "tpu", "cuda-gpu"]), max_size=2), toml_values),
        "input_shape": st.one_of(st.lists(st.integers(-2, 300), max_size=4), toml_values),
        "threads": toml_values,
        "policy": st.one_of(
            st.dictionaries(st.sampled_from(POLICY_KEYS), scalars.filter(lambda v: v is not None)), toml_values
        ),
    },
)


@RUNS
@given(
    st.one_of(
        toml_values,
        st.fixed_dictionaries({"check": st.lists(check_tables, max_size=3)}, optional={"policy": toml_values}),
    )
)
def test_gate_configs(data):
    if isinstance(data, dict):
        _parses_or_speedproof_error(parse_gate_config, data, Path("speedproof.toml"))


profile_tables = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.just("edge"), toml_values),
        "description": toml_values,
        "requires": st.one_of(
            st.fixed_dictionaries(
                {}, optional={"isa": st.sampled_from(["x86_64", "aarch64", "z80"]), "cuda_device": st.booleans()}
            ),
            toml_values,
        ),
        "isa": st.one_of(st.sampled_from(["x86_64", "aarch64", "z80"]), toml_values),
        "threads": st.one_of(st.integers(-1, 64), st.just("physical"), toml_values),
        "resources": st.one_of(
            st.fixed_dictionaries(
                {}, optional={"cores": st.one_of(st.integers(-1, 8), st.just("all")), "memory_gb": toml_values}
            ),
            toml_values,
        ),
        "batch_sizes": st.one_of(st.lists(st.integers(-1, 64), max_size=3), toml_values),
        "backends": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.sampled_from(["onnxruntime", "tvm"])},
                    optional={"execution_provider": st.text(max_size=8)},
                ),
                max_size=2,
            ),
            toml_values,
        ),
        "policy": toml_values,
    },
)


@RUNS
@given(st.one_of(profile_tables, toml_values))
@example({"name": "edge", "isa": "x86_64", "batch_sizes": [1], "resources": False})  # found by hypothesis in CI
@example({"name": "edge", "isa": "x86_64", "batch_sizes": [1], "resources": []})
@example({"name": "edge", "isa": "x86_64", "batch_sizes": [1], "requires": {"cpu_flags": 3}})
@example({"name": "edge", "isa": "x86_64", "batch_sizes": [1], "requires": {"isa": 7}})
@example({"name": "edge", "isa": "x86_64", "batch_sizes": [1], "description": []})
def test_profiles(data):
    if isinstance(data, dict):
        _parses_or_speedproof_error(parse_profile, data, Path("edge.toml"))


record_cells = st.lists(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "model": st.text(max_size=4),
                "variant": st.text(max_size=4),
                "backend": st.text(max_size=4),
                "batch_size": st.one_of(st.integers(), st.text(max_size=2)),
                "status": st.sampled_from(["ok", "failed", "?"]),
            },
            optional={
                key: json_values
                for key in (
                    "verdict",
                    "speedup",
                    "artifact",
                    "warnings",
                    "error",
                    "reference",
                    "required",
                    "cv",
                    "iterations",
                    "accuracy",
                    "throughput_speedup",
                    "remote",
                    "batch_curve",
                )
            },
        ),
    ),
    max_size=3,
)
records = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"schema_version": st.one_of(st.integers(0, 3), json_values)},
        optional={
            "run_id": json_values,
            "created_at": st.just("2026-01-01T00:00:00Z"),
            "command": st.text(max_size=6),
            "host": st.one_of(st.just({}), json_values),
            "cells": st.one_of(record_cells, json_values),
            "variants": json_values,
        },
    ),
)


@RUNS
@given(records)
def test_record_loader(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("records") / "record.json"
    path.write_text(json.dumps(data))
    _parses_or_speedproof_error(load_record, path)


@RUNS
@given(records, st.sampled_from(["table", "md", "junit"]))
def test_report_renders_a_record_or_says_it_is_damaged(tmp_path_factory, capsys, data, report_format):
    path = tmp_path_factory.mktemp("records") / "record.json"
    path.write_text(json.dumps(data))
    assert main(["report", str(path), "--format", report_format]) in (EXIT_OK, EXIT_USAGE)
    assert "Traceback" not in capsys.readouterr().err


address_text = st.lists(
    st.one_of(
        st.sampled_from(["ssh://", "tcp://", "tls://", "cluster:", "qemu-aarch64:", "[", "]", "::1", "@", ":", "-o"]),
        st.sampled_from(["ProxyCommand=x", "host", "10.0.0.2", "8786", "99999", "?python=", "?device=", "%20", "/"]),
        st.text(string.printable, max_size=5),
    ),
    max_size=7,
).map("".join)


@RUNS
@given(address_text)
@example("ssh://[::1")  # found by the hostile probe: ValueError from urlsplit
@example("cluster:tcp://[::1")
@example("ssh://-oProxyCommand=x")
def test_remote_and_cluster_addresses(text):
    from targets.runners.choose import check_remote
    from targets.runners.cluster import ClusterAddress
    from targets.runners.ssh import SshAddress

    for parse in (check_remote, ClusterAddress.parse):
        _parses_or_speedproof_error(parse, text)
    try:
        address = SshAddress.parse(text)
    except SpeedproofError:
        return
    assert not address.host.startswith("-") and not (address.user or "").startswith("-")
