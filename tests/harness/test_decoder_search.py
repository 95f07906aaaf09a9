"""Structured width pruning of decoders and `speedproof search` on a decoder, on pydoc-lm trained for two steps
here (a real trained LLaMA with its tokenizer, in seconds), built by ONNX Runtime GenAI's model builder and
measured by real ONNX Runtime GenAI sessions: perplexity as the quality a point is cut on, the judged phase's
speedup as the other objective, the budget honoured, and the best point's folder kept with its hash."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime_genai", reason="the llm extra (onnxruntime-genai) is not installed")

from harness import UsageError, search_recipes  # noqa: E402
from harness.cli import EXIT_USAGE, main  # noqa: E402
from harness.decoders.build import build_decoders, folder_facts, plan_for  # noqa: E402
from harness.decoders.search_space import (  # noqa: E402
    DecoderSpace,
    decoder_families,
    first_decoder_points,
    next_decoder_points,
)
from harness.decoders.sources import genai_folder_source, hf_folder_source, weight_shapes  # noqa: E402
from harness.decoders.width_pruning import kept_count, prune_decoder_widths, removed_groups  # noqa: E402
from harness.recipes.grammar import parse_recipe  # noqa: E402
from harness.reports.table import record_text, search_text  # noqa: E402
from harness.search.front import SearchTrial, quality_excess, quality_score, quality_text  # noqa: E402
from harness.verdict.policy import Policy  # noqa: E402
from tests.helpers import FAST_POLICY  # noqa: E402

TRAINING_STEPS = 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """pydoc-lm after two training steps, in a cache of this module's, as the zoo's source (`resolve` patched to
    train two steps instead of 300; recovery's training text cut to three topics so that finetune=2 takes a few
    steps)."""
    import harness.decoders.pydoc_lm as pydoc_lm
    import harness.decoders.recovery as recovery

    patch = pytest.MonkeyPatch()
    patch.setenv("SPEEDPROOF_DECODER_CACHE", str(tmp_path_factory.mktemp("decoders")))
    patch.setattr(pydoc_lm, "pydoc_lm_folder", functools.partial(pydoc_lm.pydoc_lm_folder, steps=TRAINING_STEPS))
    training, held_out = pydoc_lm.split_topics()
    patch.setattr(recovery, "split_topics", lambda: (training[:3], held_out))
    from harness.decoders.sources import resolve_decoder_source

    yield resolve_decoder_source("pydoc-lm")
    patch.undo()


def _zeroed(folder: Path, destination: Path, channels: list[int], group: int) -> Path:
    """A copy of the folder whose layer 0 has these MLP channels and this key/value head group zeroed."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(folder, destination)
    tensors = load_file(str(destination / "model.safetensors"))
    config = json.loads((destination / "config.json").read_text())
    head_dim = config["hidden_size"] // config["num_attention_heads"]
    per_group = config["num_attention_heads"] // config["num_key_value_heads"]
    prefix = "model.layers.0"
    for key in ("gate_proj", "up_proj"):
        tensors[f"{prefix}.mlp.{key}.weight"][channels] = 0
    tensors[f"{prefix}.mlp.down_proj.weight"][:, channels] = 0
    rows = slice(group * head_dim, (group + 1) * head_dim)
    query = slice(group * per_group * head_dim, (group + 1) * per_group * head_dim)
    tensors[f"{prefix}.self_attn.k_proj.weight"][rows] = 0
    tensors[f"{prefix}.self_attn.v_proj.weight"][rows] = 0
    tensors[f"{prefix}.self_attn.q_proj.weight"][query] = 0
    tensors[f"{prefix}.self_attn.o_proj.weight"][:, query] = 0
    save_file(tensors, str(destination / "model.safetensors"), metadata={"format": "pt"})
    return destination


def test_width_pruning_removes_the_least_important_channels_and_head_groups_in_every_layer(trained, tmp_path):
    from safetensors.torch import load_file

    config = json.loads((trained.folder / "config.json").read_text())
    width, heads, groups = config["intermediate_size"], config["num_attention_heads"], config["num_key_value_heads"]
    zeroed = _zeroed(trained.folder, tmp_path / "zeroed", list(range(0, width, 2)), group=1)
    facts = prune_decoder_widths(zeroed, tmp_path / "pruned", 0.5)
    assert facts["intermediate_size"] == [width, width // 2]
    assert facts["key_value_heads"] == [groups, groups // 2] and facts["attention_heads"] == [heads, heads // 2]
    pruned = json.loads((tmp_path / "pruned" / "config.json").read_text())
    head_dim = config["hidden_size"] // heads
    assert pruned["intermediate_size"] == width // 2 and pruned["head_dim"] == head_dim
    assert pruned["hidden_size"] == config["hidden_size"]  # the residual width is kept
    before, after = load_file(str(zeroed / "model.safetensors")), load_file(str(tmp_path / "pruned/model.safetensors"))
    # layer 0 kept exactly its non-zero channels (the odd ones) and its first head group, unchanged
    kept = list(range(1, width, 2))
    assert after["model.layers.0.mlp.gate_proj.weight"].equal(before["model.layers.0.mlp.gate_proj.weight"][kept])
    assert after["model.layers.0.mlp.down_proj.weight"].equal(before["model.layers.0.mlp.down_proj.weight"][:, kept])
    assert after["model.layers.0.self_attn.k_proj.weight"].equal(
        before["model.layers.0.self_attn.k_proj.weight"][:head_dim]
    )
    shapes = weight_shapes(tmp_path / "pruned")
    for layer in range(config["num_hidden_layers"]):  # every layer loses the same count (one width in the config)
        assert shapes[f"model.layers.{layer}.mlp.up_proj.weight"] == [width // 2, config["hidden_size"]]
        assert shapes[f"model.layers.{layer}.self_attn.o_proj.weight"] == [config["hidden_size"], heads // 2 * head_dim]
    assert hf_folder_source(tmp_path / "pruned").layers == config["num_hidden_layers"]
    mlp_only = prune_decoder_widths(trained.folder, tmp_path / "mlp", 0.25, heads=False, round_to=32)
    assert mlp_only["key_value_heads"] == [groups, groups] and mlp_only["intermediate_size"][1] % 32 == 0
    assert kept_count(384, 0.25, 1) == 288 and kept_count(384, 0.99, 64) == 64 and kept_count(10, 0.0, 8) == 8
    assert removed_groups(2, 0.25) == 0 and removed_groups(2, 0.5) == 1 and removed_groups(2, 0.99) == 1


def test_a_width_pruned_decoder_builds_recovers_and_runs(trained, tmp_path):
    """structured:R on the decoder: the builder takes the narrowed folder (its head_dim no longer the hidden size
    over the heads), recovery trains it (distilled from the uncut model), and ONNX Runtime GenAI loads it."""
    recipes = ["structured:0.5", "structured:0.5:heads=false:finetune=1:distill=true+int4-weight"]
    plans = [plan_for(parse_recipe(text), trained) for text in recipes]
    assert plans[0].widths == {"ratio": 0.5, "heads": True, "importance": "l1", "round_to": 1}
    assert plans[1].recovery is not None and plans[1].recovery["distill"] and plans[1].precision == "int4"
    with pytest.raises(UsageError, match="finetune= on one structural step only"):
        plan_for(parse_recipe("drop-layers:1:finetune=1+structured:0.5:finetune=1"), trained)
    outcomes = build_decoders(plans, trained, [tmp_path / "a", tmp_path / "b"])
    for outcome in outcomes:
        assert isinstance(outcome, dict), outcome
    assert outcomes[0]["widths"]["attention_heads"] == [4, 2] and "recovery" not in outcomes[0]
    assert outcomes[1]["widths"]["attention_heads"] == [4, 4] and outcomes[1]["recovery"]["steps"] >= 1
    assert genai_folder_source(tmp_path / "a").vocab_size == trained.vocab_size
    assert outcomes[1]["bytes"] < outcomes[0]["bytes"]  # int4 after the cut


def test_perplexity_is_a_search_quality_lower_is_better():
    rules = Policy().rules
    base = {"metric": "perplexity", "perplexity": 60.0}
    within, past = {**base, "perplexity": 62.0}, {**base, "perplexity": 66.0}
    assert quality_score(within, rules) == -62.0 > quality_score(past, rules)
    assert quality_excess(within, base, rules) < 0 < quality_excess(past, base, rules)
    trial = SearchTrial(0, "int4-weight", "int4", "timed", 1.0, within, -62.0, -60.0)
    assert quality_text(trial) == "ppl 62.00 (+3.3%)"


def test_the_decoder_space_starts_plain_and_steps_toward_the_limit():
    space = DecoderSpace(("int4", "drop-layers", "structured"), layers=4, trains=True)
    first = first_decoder_points(space)
    assert [point["family"] for point in first] == ["int4", "drop-layers", "structured"]
    dropped = first[1]
    cut = next_decoder_points(dropped, "cut_by_quality", False, space)
    assert cut == [{**dropped, "drop-layers.recovery": "finetune=2"}]  # cut: recover before going gentler
    recovered = {**dropped, "drop-layers.recovery": "finetune=2:distill=true"}
    assert next_decoder_points({**recovered, "drop-layers.count": 2}, "cut_by_quality", False, space) == [recovered]
    paid = next_decoder_points(dropped, "timed", True, space)
    assert {**dropped, "drop-layers.count": 2} in paid and {**dropped, "drop-layers.then": "int4-weight"} in paid
    assert next_decoder_points(first[0], "cut_by_quality", False, space) == []
    untrained = DecoderSpace(("drop-layers",), layers=4, trains=False)
    # without training text there is no recovery to try: one layer gentler, and nothing gentler than one layer
    two = {**dropped, "drop-layers.count": 2}
    assert next_decoder_points(two, "cut_by_quality", False, untrained) == [dropped]
    assert next_decoder_points(dropped, "cut_by_quality", False, untrained) == []
    with pytest.raises(UsageError, match="the families of a decoder search are int4"):
        decoder_families("int4,lowrank")


def test_search_on_a_decoder_keeps_the_best_folder_with_its_hash_and_cuts_on_perplexity(trained, tmp_path):
    result = search_recipes(
        "pydoc-lm",
        space="int4,drop-layers",
        trials=3,
        budget_s=600,
        max_perplexity_increase=0.05,
        out=tmp_path,
        **FAST_POLICY,
    )
    record = result.record
    search = record["search"]
    trials = [SearchTrial.from_dict(item) for item in search["trials"]]
    assert len([trial for trial in trials if trial.counts]) == 3 and search["stopped_by"] == "trials"
    assert {trial.family for trial in trials} <= {"int4", "drop-layers"}
    assert record["decoder"]["judged"] == "decode" and record["decoder"]["quality"]["on_text"]
    base = record["cells"][0]
    assert base["reference"] and base["quality"]["perplexity"] > 1
    for trial in trials:
        assert trial.state in ("timed", "cut_by_quality", "failed"), trial
        assert trial.state != "failed", trial.error
        growth = trial.quality["perplexity"] / base["quality"]["perplexity"] - 1
        assert (trial.state == "cut_by_quality") == (growth > 0.05)
        if trial.state == "timed":
            cell = next(cell for cell in record["cells"] if cell["variant"] == trial.recipe)
            assert list(cell["phases"]) == ["decode@128"]  # the judged phase alone
            low, ratio, high = (cell["speedup"][key] for key in ("ci_low", "ratio", "ci_high"))
            assert low <= ratio <= high
    kept = {item["artifact_path"] for item in search["trials"] if item["artifact_kept"]}
    for item in search["trials"]:
        assert Path(item["artifact_path"]).is_dir() == (item["artifact_path"] in kept)
    best = search["best"]
    if best is not None:
        assert best["artifact_path"] in kept
        assert (
            folder_facts(Path(best["artifact_path"]), plan_for(parse_recipe("baseline"), trained), 4, 0.0)["sha256"]
            == best["sha256"]
        )
    text = search_text(record)
    assert "perplexity at most +5% over the baseline's" in text and "baseline perplexity" in text
    assert "decode@128 *" in record_text(record)


def test_search_on_a_decoder_within_a_budget_too_short_for_a_trial_starts_none(trained, tmp_path):
    result = search_recipes("pydoc-lm", budget_s=1, out=tmp_path, **FAST_POLICY)
    search = result.record["search"]
    assert search["stopped_by"] == "budget" and search["trials"] == [] and search["best"] is None


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["--max-accuracy-drop", "0.1"], "--max-perplexity-increase"),
        (["--task", "standard"], "--max-perplexity-increase"),
        (["--resume", "somewhere"], "cannot be continued yet"),
        (["--space", "int4,lowrank"], "the families of a decoder search are"),
        (["--input-shape", "x:1,3"], "does not apply to a generative decoder"),
    ],
)
def test_search_options_that_do_not_fit_a_decoder_exit_2(arguments, says, tmp_path, capsys):
    assert main(["search", "llama-tiny-shape", "--out", str(tmp_path), *arguments]) == EXIT_USAGE
    assert says in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_demos_decoder_line_verifies_its_recipe_on_every_phase(trained, tmp_path, capsys):
    import argparse

    from harness.commands import demo
    from harness.progress import TerminalProgress
    from tests.helpers import FAST_POLICY_FLAGS

    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(["--decoder", "--out", str(tmp_path), *FAST_POLICY_FLAGS])
    record = demo._decoder_line(args, "x86-cpu", TerminalProgress(enabled=False))
    reference, cell = record["cells"]
    assert cell["variant"] == demo.DEMO_DECODER_RECIPE and cell["artifact"]["layers"] == 1
    assert set(cell["phases"]) == {"prefill@128", "ttft@128", "decode@128"}
    assert cell["quality"]["perplexity"] > 1 and cell["verdict"]["decision"] in ("ACCEPT", "REJECT")
    assert f"== {demo.DEMO_DECODER} (a generative decoder) on x86-cpu ==" in capsys.readouterr().out


def test_the_demos_decoder_line_without_the_llm_extra_exits_2_before_anything_runs(monkeypatch, tmp_path, capsys):
    """The extra is installed here; its absence is simulated by hiding a module from the import system."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *rest: None if name == "onnxruntime_genai" else real(name)
    )
    assert main(["demo", "--decoder", "--out", str(tmp_path / "out")]) == EXIT_USAGE
    assert "pip install 'speedproof[llm]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_round_whose_quality_process_fails_fails_its_points_and_the_search_goes_on(trained, tmp_path, monkeypatch):
    """The contained quality process crashing is simulated (a real crash cannot be provoked on demand): the second
    round's call raises as run_contained does; its point is the trial's failure, the record is written."""
    import harness.decoders.search_job as search_job
    from targets.errors import SpeedproofError

    real = search_job.measure_quality
    calls = []

    def crashing(*arguments, **keywords):
        calls.append(1)
        if len(calls) == 2:
            raise SpeedproofError("decoder pydoc-lm: the contained process was killed by signal 9")
        return real(*arguments, **keywords)

    monkeypatch.setattr(search_job, "measure_quality", crashing)
    result = search_recipes("pydoc-lm", space="int8", trials=2, out=tmp_path, **FAST_POLICY)
    trials = [SearchTrial.from_dict(item) for item in result.record["search"]["trials"]]
    first, second = (trial for trial in trials if trial.counts)  # repeats drawn on the way are not measured
    assert first.state in ("timed", "cut_by_quality") and second.state == "failed"
    assert "killed by signal 9" in (second.error or "") and result.record["search"]["stopped_by"] == "trials"
