"""The Python API: every job of the CLI as a function (`bench`, `build_variants`, `verify`, `compare`,
`gate`, `search_recipes`, `sensitivity`) and `load_record`, each returning a typed `Result`. (The
`variants` and `search` commands' functions have longer names: `harness.variants` and
`harness.search` are the packages that do the work.)

Keyword arguments mirror the command's options (`--input-shape` is `input_shapes`, `--batch-axis`
is `batch_axes`, `--max-accuracy-drop` is `max_accuracy_drop`, ...); each function writes the same
record the command writes, under `out`. Errors are `SpeedproofError`s (`UsageError` for the call,
`ConfigurationError` for a settings file, `InputError` for a model, data or record); one failing
variant or cell is a failed cell of the result, never an exception. `progress`, when given, is
called with each progress line the command prints on a terminal. The commands in
`harness.commands` are option parsing, one call of this module and printing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.api_arguments import checked_arguments
from harness.progress import ProgressCallback, no_progress
from harness.results import Result
from targets.errors import ConfigurationError, UsageError, did_you_mean
from targets.inputs import InputSettings

if TYPE_CHECKING:
    from targets.runners.protocol import MeasurementProtocol

PathText = str | PathLike[str]
# NAME=VALUE items as the CLI takes them, or a mapping {name: value}; a shape also as a tuple of dims
Items = str | Iterable[str] | Mapping[str, Any]
# input shapes: "NAME=1x3x224x224" items, one shape as dims, shapes as dims, or {name: shape}
Shapes = str | Iterable[int] | Iterable[str | Iterable[int]] | Mapping[str, str | Iterable[int]]
# models compressed elsewhere: "PATH[=LABEL]" items, paths, or {label: path}
Candidates = PathText | Iterable[PathText] | Mapping[str, PathText]


def _texts(name: str, value: Items | None, shapes: bool = False) -> tuple[str, ...]:
    """A CLI-style list option from a string, a list of strings or a mapping (NAME=VALUE items)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Iterable):
        raise UsageError(f"{name}={value!r}: expected a string, a list of strings or a mapping, as the CLI's options")
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if shapes and not isinstance(item, str):
                item = "x".join(str(dim) for dim in item)
            items.append(f"{key}={item}" if key is not None else str(item))
        return tuple(items)
    if shapes:
        values = list(value)
        if values and all(isinstance(dim, int) for dim in values):  # one unnamed shape: (1, 3, 224, 224)
            return ("x".join(str(dim) for dim in values),)
        return tuple(item if isinstance(item, str) else "x".join(str(dim) for dim in item) for item in values)
    values = list(value)
    if not all(isinstance(item, str) for item in values):
        raise UsageError(f"{name}={value!r}: expected strings like those the CLI takes, or a mapping")
    return tuple(values)


def _candidates(value: Candidates | None) -> tuple[str, ...]:
    """--candidate items: PATH[=LABEL] strings, paths, or a mapping {label: path}."""
    if isinstance(value, Mapping):
        return tuple(f"{path}={label}" for label, path in value.items())
    if value is None or isinstance(value, (str, PathLike)):
        return () if value is None else (str(value),)
    if not isinstance(value, Iterable):
        raise UsageError(f"candidates={value!r}: expected a path, PATH=LABEL strings or a mapping {{label: path}}")
    return tuple(str(item) for item in value)


def _positive_int(name: str, value: Any, required: bool = False) -> Any:
    """A count the CLI's positive_int type would have taken (None: the default, unless `required`)."""
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UsageError(f"{name}={value!r}: expected a positive integer")
    return value


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name}={value!r}: expected an integer")
    return value


def _batch_sizes(name: str, values: Iterable[int] | None) -> tuple[int, ...] | None:
    """Batch sizes as the CLI's 1,8,32 lists: positive integers, each once."""
    if values is None:
        return None
    if isinstance(values, (str, int)) or not isinstance(values, Iterable):
        raise UsageError(f"{name}={values!r}: expected a list of positive integers, e.g. [1, 8, 32]")
    sizes = tuple(_positive_int(name, value, required=True) for value in values)
    repeated = sorted({size for size in sizes if sizes.count(size) > 1})
    if repeated:
        raise UsageError(f"{name}={list(sizes)!r}: batch size {', '.join(map(str, repeated))} given twice")
    return sizes


def _fractions(name: str, values: Iterable[float]) -> tuple[float, ...]:
    """Sparsities as the CLI's 0.3,0.5 lists: fractions strictly between 0 and 1."""
    fractions = tuple(float(value) for value in values)
    if not fractions or not all(0.0 < value < 1.0 for value in fractions):
        raise UsageError(f"{name}={list(fractions)!r}: expected fractions between 0 and 1 (exclusive), e.g. [0.3, 0.5]")
    return fractions


def _path(value: PathText | None) -> Path | None:
    return None if value is None else Path(value)


def _source(value: PathText | None) -> str | None:
    """A data or function source: a path (as text) or package.module:function."""
    return None if value is None else str(value)


def _policy_overrides(values: Mapping[str, Any], call: str) -> dict[str, Any]:
    """The policy's keyword arguments, checked like a [policy] table; unknown names are usage errors."""
    from harness.verdict.policy import check_policy_table, policy_fields

    known = policy_fields()
    for name in values:
        if name not in known:
            raise UsageError(
                f"{call}() got an unexpected keyword argument {name!r}{did_you_mean(name, known)}; policy keywords: "
                + ", ".join(known)
            )
    try:
        given = check_policy_table(
            {name: value for name, value in values.items() if value is not None}, f"{call}() keyword arguments"
        )
    except ConfigurationError as error:
        raise UsageError(str(error)) from None
    return {name: given.get(name) for name in known}


def _protocol(values: Mapping[str, Any]) -> MeasurementProtocol:
    from targets.runners.protocol import MeasurementProtocol

    known = {item.name for item in fields(MeasurementProtocol)}
    for name in values:
        if name not in known:
            raise UsageError(
                f"bench() got an unexpected keyword argument {name!r}{did_you_mean(name, known)}; protocol keywords: "
                + ", ".join(sorted(known))
            )
    return MeasurementProtocol(**{name: value for name, value in values.items() if value is not None})


def measuring_remote(remote: str | None, cluster: str | None, device: str | None) -> str | None:
    """Where to measure, as a remote address: `remote` (ssh://..., qemu-aarch64:...), or a device of a
    Dask fleet (`cluster` with `device`). The fleet's TLS files go into Dask's config first
    (`targets.runners.fleet_security.FleetTLS(...).apply()`; the CLI's --tls-* options)."""
    if cluster and remote:
        raise UsageError("--cluster and --remote name two places to measure; give one")
    if device and not cluster:
        raise UsageError("--device picks a worker of a cluster; give --cluster tcp://SCHEDULER:PORT too")
    if cluster:
        from targets.runners.cluster import cluster_remote

        return cluster_remote(cluster, device)
    return remote


def _model_on_target(arguments: dict[str, Any]) -> dict[str, Any]:
    """The request fields every model-on-a-target job shares (the CLI's model and target options), from
    the calling function's keyword arguments (its `locals()`: other names in it are not read)."""
    model, target, threads = arguments["model"], arguments["target"], arguments["threads"]
    return {
        "model": str(model or ""),
        "target": None if target is None else str(target),
        "backend": arguments["backend"],
        "threads": _positive_int("threads", threads),
        "input_shapes": _texts("input_shapes", arguments["input_shapes"], shapes=True),
        "inputs": InputSettings(
            batch_axes=_texts("batch_axes", arguments["batch_axes"]),
            input_values=_texts("input_values", arguments["input_values"]),
            data=_source(arguments["data"]),
            calibration_data=_source(arguments["calibration_data"]),
            metric_fn=arguments["metric_fn"],
        ),
        "remote": measuring_remote(arguments["remote"], arguments["cluster"], arguments["device"]),
        "ssh_config": _path(arguments["ssh_config"]),
    }


def _result(outcome: tuple[dict[str, Any], Path]) -> Result:
    record, path = outcome
    return Result.from_record(record, path)


@checked_arguments
def bench(
    model: PathText,
    *,
    recipes: Items | None = None,
    candidates: Candidates | None = None,
    batch_sizes: Iterable[int] | None = None,
    target: str | None = None,
    backend: str | None = None,
    threads: int | None = None,
    remote: str | None = None,
    ssh_config: PathText | None = None,
    cluster: str | None = None,
    device: str | None = None,
    input_shapes: Shapes | None = None,
    batch_axes: Items | None = None,
    input_values: Items | None = None,
    data: PathText | None = None,
    calibration_data: PathText | None = None,
    metric_fn: str | None = None,
    out: PathText = "results",
    progress: ProgressCallback | None = None,
    **protocol: Any,
) -> Result:
    """Measure latency, throughput and memory of `model` (and of each recipe's variant and each
    candidate) on a target: `speedproof bench`. Protocol keywords: min_iterations, min_duration_s, ..."""
    from harness.measure.bench import BenchRequest, run_bench

    request = BenchRequest(
        **_model_on_target(locals()),
        batch_sizes=_batch_sizes("batch_sizes", batch_sizes),
        recipes=_texts("recipes", recipes),
        candidates=_candidates(candidates),
        protocol=_protocol(protocol),
        out_dir=Path(out),
    )
    return _result(run_bench(request, progress=progress or no_progress))


@checked_arguments
def build_variants(
    model: PathText,
    *,
    recipes: Items,
    target: str | None = None,
    backend: str | None = None,
    threads: int | None = None,
    remote: str | None = None,
    ssh_config: PathText | None = None,
    cluster: str | None = None,
    device: str | None = None,
    input_shapes: Shapes | None = None,
    batch_axes: Items | None = None,
    input_values: Items | None = None,
    data: PathText | None = None,
    calibration_data: PathText | None = None,
    metric_fn: str | None = None,
    out: PathText = "results",
    progress: ProgressCallback | None = None,
) -> Result:
    """Build one artifact per recipe and describe it (sizes, MACs, quality): `speedproof variants`.
    The result's `variants` lists them."""
    from harness.variants.job import VariantsRequest, run_variants

    request = VariantsRequest(
        **_model_on_target(locals()),
        recipes=_texts("recipes", recipes),
        out_dir=Path(out),
    )
    return _result(run_variants(request, progress=progress or no_progress))


@checked_arguments
def verify(
    model: PathText,
    *,
    recipes: Items | None = None,
    candidates: Candidates | None = None,
    batch_sizes: Iterable[int] = (),
    target: str | None = None,
    backend: str | None = None,
    threads: int | None = None,
    remote: str | None = None,
    ssh_config: PathText | None = None,
    cluster: str | None = None,
    device: str | None = None,
    input_shapes: Shapes | None = None,
    batch_axes: Items | None = None,
    input_values: Items | None = None,
    data: PathText | None = None,
    calibration_data: PathText | None = None,
    metric_fn: str | None = None,
    policy: PathText | None = None,
    out: PathText = "results",
    progress: ProgressCallback | None = None,
    prompt_tokens: Iterable[int] | None = None,
    decode_tokens: int | None = None,
    prompts: PathText | None = None,
    **policy_values: Any,
) -> Result:
    """A/B-measure each recipe's variant and each candidate (`PATH[=LABEL]`, a model compressed
    elsewhere) against the baseline and ACCEPT or REJECT it: `speedproof verify`. `policy` is a TOML
    file with a [policy] table; policy keywords (min_speedup, max_accuracy_drop, batch_size, ...)
    override it. `batch_sizes`: also compare at these for the speedup curve.

    A generative decoder (a zoo decoder, a Hugging Face folder, an ONNX Runtime GenAI folder) is timed phase by
    phase instead: prefill at each of `prompt_tokens` (default 128, 512), time to first token and time per token
    (`decode_tokens` per timed window) after the first; `prompts`: a text file whose tokens replace the random
    ids; the policy's metric names the phase that must pay (decode_ms_per_token by default)."""
    from harness.decoders.sources import is_decoder_source

    decoder_options = {"prompt_tokens": prompt_tokens, "decode_tokens": decode_tokens, "prompts": prompts}
    if is_decoder_source(str(model)):
        return _verify_decoder(locals(), policy_values)
    given = [name for name, value in decoder_options.items() if value is not None]
    if given:
        raise UsageError(f"{given[0]}= times a generative decoder's phases; {model} is not a decoder")
    from harness.verdict.verify import VerifyRequest, run_verify

    request = VerifyRequest(
        **_model_on_target(locals()),
        recipes=_texts("recipes", recipes),
        candidates=_candidates(candidates),
        policy_file=_path(policy),
        policy_overrides=_policy_overrides(policy_values, "verify"),
        out_dir=Path(out),
        batch_sizes=_batch_sizes("batch_sizes", batch_sizes) or (),
    )
    return _result(run_verify(request, progress=progress or no_progress))


# verify's options that mean nothing for a decoder, each with its default
NOT_FOR_DECODERS = {
    "batch_sizes": (),
    "remote": None,
    "ssh_config": None,
    "cluster": None,
    "device": None,
    "input_shapes": None,
    "batch_axes": None,
    "input_values": None,
    "calibration_data": None,
    "metric_fn": None,
}


def _verify_decoder(arguments: dict[str, Any], policy_values: dict[str, Any]) -> Result:
    from harness.decoders.job import DecoderVerifyRequest, run_decoder_verify
    from harness.decoders.scenario import DEFAULT_PROMPT_TOKENS, DecoderScenario

    for name, default in NOT_FOR_DECODERS.items():
        if arguments[name] not in (default, None, ()):
            raise UsageError(
                f"--{name.replace('_', '-')} ({name}=) does not apply to a generative decoder "
                f"({arguments['model']}): it is measured on this machine's CPU with token ids it makes (or prompts=)"
            )
    given = arguments["prompt_tokens"]
    if given is not None and (isinstance(given, (str, int)) or not isinstance(given, Iterable)):
        raise UsageError(f"prompt_tokens={given!r}: expected a list of prompt lengths, e.g. [128, 512]")
    lengths = (
        tuple(_positive_int("prompt_tokens", value, required=True) for value in given)
        if given
        else DEFAULT_PROMPT_TOKENS
    )
    scenario = DecoderScenario(
        prompt_tokens=lengths,
        **(
            {"decode_tokens": _positive_int("decode_tokens", arguments["decode_tokens"])}
            if arguments["decode_tokens"] is not None
            else {}
        ),
        prompts=_path(arguments["prompts"]),
    )
    request = DecoderVerifyRequest(
        model=str(arguments["model"]),
        recipes=_texts("recipes", arguments["recipes"]),
        candidates=_candidates(arguments["candidates"]),
        target=None if arguments["target"] is None else str(arguments["target"]),
        backend=arguments["backend"],
        threads=_positive_int("threads", arguments["threads"]),
        policy_file=_path(arguments["policy"]),
        policy_overrides=_policy_overrides(policy_values, "verify"),
        scenario=scenario,
        data=_path(arguments["data"]),
        out_dir=Path(arguments["out"]),
    )
    return _result(run_decoder_verify(request, progress=arguments["progress"] or no_progress))


@checked_arguments
def compare(
    model: PathText,
    *,
    sparsities: Iterable[float] | None = None,
    finetune: int = 0,
    candidates: Candidates | None = None,
    batch_sizes: Iterable[int] = (),
    target: str | None = None,
    backend: str | None = None,
    threads: int | None = None,
    remote: str | None = None,
    ssh_config: PathText | None = None,
    cluster: str | None = None,
    device: str | None = None,
    input_shapes: Shapes | None = None,
    batch_axes: Items | None = None,
    input_values: Items | None = None,
    data: PathText | None = None,
    calibration_data: PathText | None = None,
    metric_fn: str | None = None,
    policy: PathText | None = None,
    out: PathText = "results",
    progress: ProgressCallback | None = None,
    **policy_values: Any,
) -> Result:
    """Structured against unstructured pruning at each sparsity (default 0.3, 0.5, 0.7, 0.9), each
    verified A/B, fine-tuned `finetune` epochs first: `speedproof compare`. The result's
    `section("compare")` has the two curves."""
    from harness.verdict.pruning_sweep import DEFAULT_SPARSITIES, CompareRequest, run_compare

    request = CompareRequest(
        **_model_on_target(locals()),
        sparsities=DEFAULT_SPARSITIES if sparsities is None else _fractions("sparsities", sparsities),
        finetune_epochs=_integer("finetune", finetune),
        candidates=_candidates(candidates),
        batch_sizes=_batch_sizes("batch_sizes", batch_sizes) or (),
        policy_file=_path(policy),
        policy_overrides=_policy_overrides(policy_values, "compare"),
        out_dir=Path(out),
    )
    return _result(run_compare(request, progress=progress or no_progress))


@checked_arguments
def gate(
    config: PathText,
    *,
    baseline: PathText | None = None,
    allow_other_host: bool = False,
    require_all_targets: bool = False,
    ssh_config: PathText | None = None,
    cluster: str | None = None,
    out: PathText = "results",
    progress: ProgressCallback | None = None,
    **policy_values: Any,
) -> Result:
    """Verify every check of a gate config (speedproof.toml) on every target it names: `speedproof
    gate`. `section("gate")` holds `exit_code` (0 passed, 1 failed), `failures`, `skipped` and
    `regressions` against the `baseline` record. The JUnit and markdown reports are the CLI's."""
    from harness.verdict.gate import GateRequest, run_gate

    request = GateRequest(
        config_path=Path(config),
        out_dir=Path(out),
        baseline_record=_path(baseline),
        allow_other_host=allow_other_host,
        require_all_targets=require_all_targets,
        policy_overrides=_policy_overrides(policy_values, "gate"),
        ssh_config=_path(ssh_config),
        cluster=cluster,
    )
    return _result(run_gate(request, progress=progress or no_progress))


@checked_arguments
def search_recipes(
    model: PathText | None = None,
    *,
    space: str | Iterable[str] | None = None,
    max_accuracy_drop: float | None = None,
    task: str | None = None,
    budget_s: float | None = None,
    trials: int | None = None,
    seed: int = 0,
    resume: PathText | None = None,
    target: str | None = None,
    backend: str | None = None,
    threads: int | None = None,
    remote: str | None = None,
    ssh_config: PathText | None = None,
    cluster: str | None = None,
    device: str | None = None,
    input_shapes: Shapes | None = None,
    batch_axes: Items | None = None,
    input_values: Items | None = None,
    data: PathText | None = None,
    calibration_data: PathText | None = None,
    metric_fn: str | None = None,
    policy: PathText | None = None,
    out: PathText = "results",
    progress: ProgressCallback | None = None,
    **policy_values: Any,
) -> Result:
    """Search the recipe space for the fastest variant within the quality limit (`max_accuracy_drop`,
    or `task`'s), within `budget_s` seconds or `trials` trials: `speedproof search`. `resume`: the
    folder of an earlier search, continued. `section("search")` holds the front and the best."""
    from harness.decoders.sources import is_decoder_source
    from harness.search.job import DEFAULT_BUDGET_S, SearchRequest, run_search

    if model is None and resume is None:
        raise UsageError("search_recipes: give a model, or resume (the folder of a search) to continue one")
    if budget_s is not None and not budget_s > 0:
        raise UsageError(f"--budget-s {budget_s:g}: must be > 0 seconds")
    if model is not None and is_decoder_source(str(model)):
        return _search_decoder(locals(), policy_values)
    request = SearchRequest(
        **_model_on_target(locals()),
        policy_file=_path(policy),
        policy_overrides=_policy_overrides(policy_values, "search_recipes"),  # the quality limit: max_accuracy_drop
        out_dir=Path(out),
        space=space if space is None or isinstance(space, str) else ",".join(space),
        max_accuracy_drop=max_accuracy_drop,
        task=task,
        budget_s=DEFAULT_BUDGET_S if budget_s is None else budget_s,
        max_trials=_positive_int("trials", trials),
        seed=_integer("seed", seed),
    )
    request.quality_overrides()  # both limits given: a usage error before anything runs
    return _result(run_search(request, progress=progress or no_progress, resume=_path(resume)))


def _search_decoder(arguments: dict[str, Any], policy_values: dict[str, Any]) -> Result:
    """`search_recipes` on a generative decoder: its own space and job (harness.decoders.search_job)."""
    from harness.decoders.search_job import DEFAULT_BUDGET_S, DecoderSearchRequest, run_decoder_search
    from harness.search import MAX_SEED

    model = str(arguments["model"])
    for name, default in NOT_FOR_DECODERS.items():
        if arguments.get(name) not in (default, None, ()):
            raise UsageError(
                f"--{name.replace('_', '-')} ({name}=) does not apply to a generative decoder ({model}): it is "
                "measured on this machine's CPU with token ids it makes"
            )
    if arguments["resume"] is not None:
        raise UsageError(
            f"--resume: a decoder search ({model}) cannot be continued yet; start a new one (its record keeps every "
            "trial of the search that stopped)"
        )
    for name in ("max_accuracy_drop", "task"):
        if arguments[name] is not None or policy_values.get(name) is not None:
            raise UsageError(
                f"--{name.replace('_', '-')}: a decoder's quality limit is its perplexity on text: give "
                "--max-perplexity-increase X (relative; 0.05 = 5%)"
            )
    seed = _integer("seed", arguments["seed"])
    if not 0 <= seed <= MAX_SEED:  # the sampler draws numpy seeds
        raise UsageError(f"--seed {seed}: a seed is a whole number from 0 to {MAX_SEED}")
    request = DecoderSearchRequest(
        model=model,
        space=arguments["space"]
        if arguments["space"] is None or isinstance(arguments["space"], str)
        else ",".join(arguments["space"]),
        target=None if arguments["target"] is None else str(arguments["target"]),
        backend=arguments["backend"],
        threads=_positive_int("threads", arguments["threads"]),
        policy_file=_path(arguments["policy"]),
        policy_overrides=_policy_overrides(policy_values, "search_recipes"),
        data=_path(arguments["data"]),
        budget_s=DEFAULT_BUDGET_S if arguments["budget_s"] is None else float(arguments["budget_s"]),
        max_trials=_positive_int("trials", arguments["trials"]),
        seed=seed,
        out_dir=Path(arguments["out"]),
    )
    return _result(run_decoder_search(request, progress=arguments["progress"] or no_progress))


@checked_arguments
def sensitivity(
    model: PathText,
    *,
    recipe: str | None = None,
    speed: bool = False,
    target: str | None = None,
    backend: str | None = None,
    threads: int | None = None,
    remote: str | None = None,
    ssh_config: PathText | None = None,
    cluster: str | None = None,
    device: str | None = None,
    input_shapes: Shapes | None = None,
    batch_axes: Items | None = None,
    input_values: Items | None = None,
    data: PathText | None = None,
    calibration_data: PathText | None = None,
    metric_fn: str | None = None,
    policy: PathText | None = None,
    out: PathText = "results",
    progress: ProgressCallback | None = None,
    **policy_values: Any,
) -> Result:
    """Prune each layer group alone at `recipe`'s ratio and rank the groups by the accuracy it costs
    (`speed`: and A/B-verify each): `speedproof sensitivity`. `section("sensitivity")` has the ranking."""
    from harness.search.sensitivity_job import DEFAULT_RECIPE, SensitivityRequest, run_sensitivity

    request = SensitivityRequest(
        **_model_on_target(locals()),
        recipe=recipe or DEFAULT_RECIPE,
        speed=speed,
        policy_file=_path(policy),
        policy_overrides=_policy_overrides(policy_values, "sensitivity"),
        out_dir=Path(out),
    )
    return _result(run_sensitivity(request, progress=progress or no_progress))


@checked_arguments
def load_record(path: PathText) -> Result:
    """A record speedproof wrote (any command's, any schema version it can upgrade), checked and read
    as a Result; a file that is not one is an InputError naming it."""
    from harness.records.store import load_record as load_record_dict

    return Result.from_record(load_record_dict(Path(path)), Path(path))
