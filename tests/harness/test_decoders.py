"""Generative decoders on real ONNX Runtime GenAI sessions: the zoo's tiny LLaMA made here (random weights,
a tokenizer trained on pydoc_data), built by ONNX Runtime GenAI's own model builder in its contained process,
timed phase by phase by the onnxruntime-genai backend, verified A/B with the policy's phase deciding; and every
bad input refused before anything is built, naming the file and field."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime_genai", reason="the llm extra (onnxruntime-genai) is not installed")

from harness import InputError, SpeedproofError, UsageError, verify  # noqa: E402
from harness.cli import EXIT_USAGE, main  # noqa: E402
from harness.decoders.build import DecoderBuildPlan, build_decoders, drop_decoder_layers, plan_for  # noqa: E402
from harness.decoders.scenario import DecoderScenario  # noqa: E402
from harness.decoders.sources import (  # noqa: E402
    genai_folder_source,
    hf_folder_source,
    resolve_decoder_source,
    weight_shapes,
)
from harness.recipes.grammar import parse_recipe  # noqa: E402
from harness.reports.markdown import markdown_report  # noqa: E402
from harness.reports.table import record_text  # noqa: E402
from harness.verdict.policy import Policy, metric_for_model  # noqa: E402
from targets.backends.genai.runner import GenaiRunner  # noqa: E402
from tests.helpers import FAST_POLICY  # noqa: E402

TINY = "llama-tiny-shape"
# short prompts keep every phase of the tiny decoder well under a millisecond or two
SHORT = {"prompt_tokens": [16, 32], "decode_tokens": 4}


@pytest.fixture(scope="module", autouse=True)
def _decoder_cache(tmp_path_factory):
    """The zoo's decoders made once for this module, in a folder of the suite's own."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("SPEEDPROOF_DECODER_CACHE", str(tmp_path_factory.mktemp("decoders")))
    yield
    monkeypatch.undo()


@pytest.fixture(scope="module")
def tiny_source():
    return resolve_decoder_source(TINY)


@pytest.fixture(scope="module")
def tiny_builds(tiny_source, tmp_path_factory):
    """The tiny decoder built in fp32 by the model builder (a GenAI folder), beside a build the builder refuses
    and the identity, in one contained process."""
    built = tmp_path_factory.mktemp("built")
    plans = [
        DecoderBuildPlan("baseline"),
        DecoderBuildPlan("broken", precision="int4", extra_options={"block_size": "7"}),
        DecoderBuildPlan("identity", identity=True),
    ]
    return built, build_decoders(plans, tiny_source, [built / "fp32", built / "broken", built / "identity"])


@pytest.fixture(scope="module")
def tiny_genai(tiny_builds):
    built, outcomes = tiny_builds
    facts = outcomes[0]
    assert facts["kind"] == "genai-folder" and len(facts["sha256"]) == 64 and facts["layers"] == 4
    return built / "fp32"


def test_a_build_the_builder_refuses_fails_alone_and_the_identity_is_the_baselines_folder(tiny_builds, tiny_genai):
    _, (baseline, broken, identity) = tiny_builds
    assert isinstance(broken, SpeedproofError) and "(broken)" in str(broken)
    assert identity["path"] == baseline["path"] and identity["sha256"] == baseline["sha256"]


def _copy(source: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(source, tmp_path / name))


def test_the_zoo_decoder_is_a_checked_hugging_face_folder(tiny_source):
    assert (tiny_source.kind, tiny_source.layers, tiny_source.vocab_size) == ("zoo", 4, 512)
    assert tiny_source.latency_only and tiny_source.architecture == "LlamaForCausalLM"
    assert (tiny_source.folder / "tokenizer.json").is_file()
    assert resolve_decoder_source(TINY).folder == tiny_source.folder  # made once, then found


@pytest.mark.parametrize(
    "breaks, says",
    [
        (lambda folder: (folder / "tokenizer.json").unlink(), "no tokenizer"),
        (
            lambda folder: _edit_config(folder, architectures=["BertForMaskedLM"]),
            "architectures[0] = 'BertForMaskedLM'",
        ),
        (lambda folder: _edit_config(folder, vocab_size=1000), "vocab_size = 1000, but the weights' embedding table"),
        (lambda folder: _edit_config(folder, num_hidden_layers=6), "num_hidden_layers = 6, but the weights hold"),
        (lambda folder: _edit_config(folder, hidden_size=-3), "hidden_size = -3"),
        (lambda folder: (folder / "model.safetensors").unlink(), "no weights"),
        (lambda folder: (folder / "model.safetensors").write_bytes(b"\xff" * 16), "not a readable safetensors file"),
    ],
)
def test_a_broken_hugging_face_folder_is_refused_naming_what_to_fix(tiny_source, tmp_path, breaks, says):
    folder = _copy(tiny_source.folder, tmp_path, "broken")
    breaks(folder)
    with pytest.raises(InputError, match=None) as raised:
        resolve_decoder_source(str(folder))
    assert says in str(raised.value)


def _edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))


def test_a_genai_folder_is_read_from_its_config_and_one_without_its_model_is_refused(tiny_genai, tmp_path):
    source = genai_folder_source(tiny_genai)
    assert (source.kind, source.layers, source.vocab_size, source.buildable) == ("genai-folder", 4, 512, False)
    broken = _copy(tiny_genai, tmp_path, "no-model")
    (broken / "model.onnx").unlink()
    with pytest.raises(InputError, match="model.decoder.filename = 'model.onnx' is not a file"):
        genai_folder_source(broken)


def test_decoder_recipes_become_builder_precisions_and_the_others_are_refused(tiny_source, tiny_genai):
    plan = plan_for(parse_recipe("int4-weight:block_size=64:accuracy_level=1"), tiny_source)
    assert (plan.precision, plan.extra_options) == ("int4", {"block_size": "64", "accuracy_level": "1"})
    plan = plan_for(parse_recipe("int8-weight:symmetric=false"), tiny_source)
    assert plan.precision == "int8" and plan.extra_options["is_symmetric"] == "false"
    plan = plan_for(parse_recipe("drop-layers:2+int4-weight"), tiny_source)
    assert (plan.drop, plan.precision) == ((2, "ends"), "int4")
    assert plan_for(parse_recipe("identity"), tiny_source).identity
    refusals = {
        "lowrank:0.5": "does not apply to a decoder",
        "structured:0.5:global=true": "global= does not apply to a decoder",
        "structured:0.5:layer_ratios=sensitivity": "layer_ratios= does not apply to a decoder",
        "structured:0.5:steps=2": "steps= does not apply to a decoder",
        "structured:0.5:finetune=1": "finetune= needs the decoder's training text",
        "fp16": "decoders run on GPUs",
        "drop-layers:4": "drop at most 3",
        "drop-layers:1:finetune=2": "finetune= needs the decoder's training text, which only pydoc-lm carries",
        "int8-weight+int4-weight": "one weight precision per decoder recipe",
    }
    for text, says in refusals.items():
        with pytest.raises(UsageError, match=says):
            plan_for(parse_recipe(text), tiny_source)
    with pytest.raises(UsageError, match="recipes rebuild a decoder from its Hugging Face folder"):
        plan_for(parse_recipe("int4-weight"), genai_folder_source(tiny_genai))


def test_dropped_layers_leave_a_consistent_folder_with_the_kept_layers_renumbered(tiny_source, tmp_path):
    kept = drop_decoder_layers(tiny_source.folder, tmp_path / "dropped", 2, "ends")
    assert kept == 2
    shapes = weight_shapes(tmp_path / "dropped")
    assert {key.split(".")[2] for key in shapes if key.startswith("model.layers.")} == {"0", "1"}
    source = resolve_decoder_source(str(tmp_path / "dropped"))  # its config agrees with its weights
    assert source.layers == 2 and (tmp_path / "dropped" / "tokenizer.json").is_file()


@pytest.mark.parametrize("phase", ["prefill", "ttft", "decode"])
def test_each_phase_times_itself_with_the_runners_own_clock(tiny_genai, phase):
    runner = GenaiRunner(str(tiny_genai), 1, {"phase": phase, "prompt_tokens": 16, "decode_tokens": 4})
    with runner:
        assert runner.get_input_metadata() == []
        figures = []
        for _ in range(3):
            runner.infer({})
            figures.append(runner.device_elapsed_ns())
        assert all(figure > 0 for figure in figures)
        assert runner.runtime_facts()["phase"] == phase and runner.actual_provider == "cpu"


def test_a_prompt_past_the_context_fails_the_runner_naming_the_config_field(tiny_genai):
    runner = GenaiRunner(str(tiny_genai), 1, {"phase": "prefill", "prompt_tokens": 5000})
    with pytest.raises(Exception, match="model.context_length"):
        runner.activate()


def test_the_policy_metric_must_fit_the_kind_of_model():
    assert metric_for_model(Policy(), decoder=True).schedule.metric == "decode_ms_per_token"
    assert (
        metric_for_model(Policy().with_values({"metric": "prefill_ms"}), decoder=True).schedule.metric == "prefill_ms"
    )
    with pytest.raises(UsageError, match="a generative decoder is judged on a phase"):
        metric_for_model(Policy().with_values({"metric": "p90"}), decoder=True)
    with pytest.raises(UsageError, match="for this model use p50"):
        metric_for_model(Policy().with_values({"metric": "ttft_ms"}), decoder=False)


def test_verify_judges_the_policys_phase_and_reports_every_phase(tiny_genai, tmp_path):
    """A dropped-layer variant built by the builder and a candidate folder made outside speedproof (the
    baseline's own build: an A/A that must not be accepted), judged on prefill; every phase in the record."""
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("The for statement is used to iterate over the elements of a sequence. " * 20)
    result = verify(
        TINY,
        recipes=["drop-layers:2"],
        candidates={"outside": str(tiny_genai)},
        prompts=prompt,
        data=prompt,
        out=tmp_path / "out",
        metric="prefill_ms",
        **SHORT,
        **FAST_POLICY,
    )
    record = result.record
    assert record["decoder"]["judged"] == "prefill"
    assert record["decoder"]["phases"] == ["prefill@16", "prefill@32", "ttft@16", "decode@16"]
    reference, dropped, outside = record["cells"]
    assert reference["reference"] and reference["artifact"]["layers"] == 4
    assert dropped["artifact"]["layers"] == 2 and Path(dropped["artifact"]["path"], "genai_config.json").is_file()
    for cell in (dropped, outside):
        assert set(cell["phases"]) == set(record["decoder"]["phases"])
        for phase in cell["phases"].values():
            assert phase["status"] == "ok" and phase["baseline_ms"] > 0 and phase["variant_ms"] > 0
            assert phase["speedup"]["ci_low"] <= phase["speedup"]["ratio"] <= phase["speedup"]["ci_high"]
        assert cell["speedup"] in [
            phase["speedup"] for key, phase in cell["phases"].items() if key.startswith("prefill")
        ]
    assert outside["verdict"]["decision"] == "REJECT"  # the same folder: never faster than itself
    # quality from each folder's own ONNX decoder, on the --data text: the same folder agrees with itself
    assert record["decoder"]["quality"]["on_text"] and reference["quality"]["perplexity"] > 1
    assert outside["quality"]["perplexity"] == pytest.approx(reference["quality"]["perplexity"])
    assert outside["quality"]["top1_agreement"] == 1.0 and outside["quality"]["mean_cosine"] == pytest.approx(1.0)
    assert dropped["quality"]["top1_agreement"] < 1.0
    assert record["model_source"]["latency_only"]
    text = record_text(record)
    assert "prefill@16 *" in text and "decode@16" in text and "ms/token" in text
    assert "drop-layers:2 decode@16:" in text  # a phase the policy does not judge, said as a finding
    assert "decode@16" in markdown_report(record)


def test_bad_decoder_input_exits_2_before_anything_is_built(tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(["verify", TINY, "--recipes", "int4-weight", "--prompt-tokens", "2000", "--out", str(out)]) == EXIT_USAGE
    )
    assert "pass llama-tiny-shape's context of 1024 tokens" in capsys.readouterr().err
    assert main(["verify", TINY, "--recipes", "int4-weight", "--input-shape", "1,3", "--out", str(out)]) == EXIT_USAGE
    assert "does not apply to a generative decoder" in capsys.readouterr().err
    assert main(["verify", TINY, "--candidate", str(tmp_path), "--out", str(out)]) == EXIT_USAGE
    assert "not an ONNX Runtime GenAI folder" in capsys.readouterr().err
    short = tmp_path / "short.txt"
    short.write_text("a few words")
    assert main(["verify", TINY, "--recipes", "int4-weight", "--prompts", str(short), "--out", str(out)]) == EXIT_USAGE
    assert "fewer than the longest --prompt-tokens" in capsys.readouterr().err
    assert not out.exists()


def test_a_decoder_scenario_refuses_lengths_it_cannot_time():
    with pytest.raises(UsageError, match="listed twice"):
        DecoderScenario(prompt_tokens=(16, 16))
    with pytest.raises(UsageError, match="at least 2"):
        DecoderScenario(decode_tokens=1)


def test_perplexity_growth_past_the_policy_is_an_accuracy_drop_naming_both(tiny_source):
    from harness.verdict.reasons import ReasonCode
    from harness.verdict.rules import Evidence, QualityCheck

    base = {"metric": "perplexity", "perplexity": 60.0, "text": "held-out text", "reference": True}
    evidence = Evidence(
        "int4-weight",
        Policy(),
        {},
        {},
        baseline_quality=base,
        variant_quality={**base, "perplexity": 66.0, "reference": None},
    )
    (reason,) = QualityCheck().evaluate(evidence).reasons
    assert reason.code == ReasonCode.ACCURACY_DROP and "perplexity 66.00 vs baseline 60.00" in reason.message
    assert "+10.0% > +5% allowed" in reason.message
    within = Evidence(
        "int4-weight", Policy(), {}, {}, baseline_quality=base, variant_quality={**base, "perplexity": 62.0}
    )
    assert QualityCheck().evaluate(within).reasons == []
    with pytest.raises(Exception, match="max_perplexity_increase = -1"):
        Policy().with_values({"max_perplexity_increase": -1.0})


def test_pydoc_lm_trains_on_the_training_topics_and_is_cached_with_its_checksum(tmp_path, monkeypatch):
    """Two steps of the real training (the zoo's takes 300, about 50 s): the folder is a decoder the builder
    takes, its facts say what it was trained on and its held-out perplexity; a cache whose weights do not match
    their checksum is trained again."""
    from harness.decoders.pydoc_lm import held_out_text, pydoc_lm_facts, pydoc_lm_folder, split_topics
    from targets.cache_files import file_sha256

    monkeypatch.setenv("SPEEDPROOF_DECODER_CACHE", str(tmp_path))
    training, held_out = split_topics()
    assert len(held_out) * 7 <= len(training) <= len(held_out) * 8 and held_out[0] in held_out_text()
    assert not set(training) & set(held_out)
    folder = pydoc_lm_folder(steps=2)
    facts = pydoc_lm_facts(folder)
    assert facts["steps"] == 2 and facts["uniform_perplexity"] == 1024 and facts["held_out_perplexity"] > 1
    assert facts["training_tokens"] > 100_000 and facts["held_out_tokens"] > 10_000
    assert resolve_decoder_source(str(folder)).layers == 4
    assert pydoc_lm_folder(steps=2) == folder  # cached
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    said: list[str] = []
    assert pydoc_lm_folder(said.append, steps=2) == folder
    assert any("do not match their checksum" in line for line in said)
    assert file_sha256(weights) == pydoc_lm_facts(folder)["sha256"]

    # drop-layers' recovery needs the training text pydoc-lm carries: one epoch of distillation, then the build,
    # as the contained build process runs them (here in this process, on a short training text: two steps)
    trained = replace(hf_folder_source(folder, "pydoc-lm"), kind="zoo", facts=pydoc_lm_facts(folder))
    plan = plan_for(parse_recipe("drop-layers:2:finetune=1:distill=true"), trained)
    assert plan.recovery == {"epochs": 1, "distill": True, "temperature": 4.0, "alpha": 0.7}
    with pytest.raises(UsageError, match="distill=true needs finetune=E"):
        plan_for(parse_recipe("drop-layers:2:distill=true"), trained)
    import harness.decoders.recovery as recovery
    from harness.decoders.build_step import _build_one

    monkeypatch.setattr(recovery, "split_topics", lambda: (training[:3], held_out))
    monkeypatch.chdir(tmp_path)
    build = {"out_folder": str(tmp_path / "recovered"), "precision": "fp32", "drop": [2, "ends"]}
    built = _build_one(str(folder), {**build, "recovery": plan.recovery})
    assert built["status"] == "ok", built
    assert built["layers"] == 2 and built["recovery"]["distill"] and 1 <= built["recovery"]["steps"] < 10
    assert genai_folder_source(tmp_path / "recovered").layers == 2


def test_without_the_llm_extra_a_decoder_is_refused_naming_it(monkeypatch):
    """The extra is installed here; its absence is simulated by hiding the modules from the import system."""
    import importlib.util

    from harness.decoders.sources import require_llm_extra

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *rest: None if name in ("onnxruntime_genai", "onnx_ir") else real(name),
    )
    with pytest.raises(UsageError, match=r"needs onnxruntime-genai, onnx-ir: install pip install 'speedproof\[llm\]'"):
        require_llm_extra(TINY)
