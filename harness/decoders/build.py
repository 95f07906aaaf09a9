"""Decoder variants: each recipe becomes an ONNX Runtime GenAI folder, built from the source's Hugging Face
folder by ONNX Runtime GenAI's own model builder in a contained process (`build_step`), with the builder's
precisions for weight-only quantization (`int4-weight`, `int8-weight`: MatMulNBits with the recipe's block size,
accuracy level and symmetry), and `drop-layers:K` and `structured:R` (`width_pruning`) applied to the Hugging Face
weights before the build, recovered on pydoc-lm's training text where the recipe says (`recovery`).

A built GenAI folder as the source is measured as it is: recipes need the Hugging Face folder it came from.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.decoders.sources import LAYER_KEY, DecoderSource
from harness.models.contained import run_contained
from harness.recipes.catalogue import BASELINE, IDENTITY, RecipeStep
from harness.recipes.grammar import Recipe
from harness.recipes.layer_dropping import kept_indices
from targets.errors import InputError, SpeedproofError, UsageError

# recipe steps that apply to a decoder, and what each does there
DECODER_STEPS = {
    BASELINE: "the Hugging Face model built in fp32",
    IDENTITY: "the baseline's own folder measured again (the A/A control)",
    "drop-layers": "K decoder layers removed from the weights before the build (keep=ends|first|last); on "
    "pydoc-lm finetune=E[:distill=true] recovers them on its training text first",
    "structured": "R of every layer's MLP channels and attention head groups (heads=false: the MLP alone) removed "
    "by magnitude before the build (importance=l1|l2|random, round_to=N; finetune=E[:distill=true] on pydoc-lm)",
    "int4-weight": "the builder's int4 precision (MatMulNBits; block_size, accuracy_level, symmetric)",
    "int8-weight": "the builder's int8 precision (MatMulNBits; block_size, accuracy_level, symmetric)",
}
STRUCTURAL_STEPS = ("drop-layers", "structured")
GPU_ONLY_STEPS = ("fp16", "bf16")
RECOVERY_KEYS = ("finetune", "distill")  # decoder recovery needs the training text: pydoc-lm's
# structured's options that have no meaning on a decoder, with what to do instead
STRUCTURED_NOT_FOR_DECODERS = {
    "global": "a decoder's config holds one width for every layer, so every layer loses the same share",
    "layer_ratios": "a decoder's config holds one width for every layer, so every layer loses the same share",
    "steps": "a decoder is pruned in one step (then recovered with finetune=E)",
}


@dataclass(frozen=True)
class DecoderBuildPlan:
    """What the builder is asked for one recipe."""

    recipe: str
    precision: str = "fp32"  # the builder's -p
    extra_options: dict[str, str] = field(default_factory=dict)
    drop: tuple[int, str] | None = None  # drop-layers: (K, keep)
    identity: bool = False
    # structured: {"ratio", "heads", "importance", "round_to"}, applied after drop-layers
    widths: dict[str, Any] | None = None
    # the structural steps' recovery before the build: {"epochs", "distill", "temperature", "alpha"} (pydoc-lm)
    recovery: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "extra_options": self.extra_options,
            "drop_layers": None if self.drop is None else {"count": self.drop[0], "keep": self.drop[1]},
            "widths": self.widths,
            "identity": self.identity,
            "recovery": self.recovery,
        }


def plan_for(recipe: Recipe, source: DecoderSource) -> DecoderBuildPlan:
    """The build of `recipe` on `source`; a recipe that cannot apply to a decoder is a UsageError saying which do."""
    if recipe.is_baseline:
        return DecoderBuildPlan(recipe.text)
    if recipe.is_identity:
        return DecoderBuildPlan(recipe.text, identity=True)
    if not source.buildable:
        raise UsageError(
            f"recipe {recipe.text!r}: {source.name} is a built ONNX Runtime GenAI folder; recipes rebuild a decoder "
            "from its Hugging Face folder (config.json, model.safetensors, tokenizer): give that folder, or compare "
            "folders built elsewhere with --candidate"
        )
    changes: dict[str, Any] = {}
    for step in recipe.steps:
        if step.name in GPU_ONLY_STEPS:
            raise UsageError(
                f"recipe {recipe.text!r}: {step.name} decoders run on GPUs; speedproof measures decoders on CPU "
                "targets so far (x86-cpu). CPU recipes: int4-weight, int8-weight, drop-layers:K, structured:R"
            )
        if step.name not in DECODER_STEPS:
            raise UsageError(
                f"recipe {recipe.text!r}: {step.name} does not apply to a decoder; recipes for decoders: "
                + "; ".join(f"{name} ({what})" for name, what in DECODER_STEPS.items())
            )
        if step.name in STRUCTURAL_STEPS:
            recovery = _recovery(recipe, step, source)
            if recovery is not None:
                if "recovery" in changes:
                    raise UsageError(
                        f"recipe {recipe.text!r}: finetune= on one structural step only (the recovery runs once, "
                        "after every cut)"
                    )
                changes["recovery"] = recovery
        if step.name == "drop-layers":
            assert step.value is not None
            if int(step.value) >= source.layers:
                raise UsageError(
                    f"recipe {recipe.text!r}: {source.name} has {source.layers} layers; drop at most "
                    f"{source.layers - 1}"
                )
            changes["drop"] = (int(step.value), str(step.option("keep")))
        elif step.name == "structured":
            changes["widths"] = _widths(recipe, step)
        else:
            if "precision" in changes:
                raise UsageError(f"recipe {recipe.text!r}: one weight precision per decoder recipe")
            options = {
                "block_size": str(step.option("block_size")),
                "accuracy_level": str(step.option("accuracy_level")),
            }
            if "symmetric" in step.options:  # left out: the builder's own default (symmetric)
                options["is_symmetric"] = "true" if step.options["symmetric"] else "false"
            changes["precision"] = "int8" if step.name == "int8-weight" else "int4"
            changes["extra_options"] = options
    return DecoderBuildPlan(recipe.text, **changes)


def _recovery(recipe: Recipe, step: RecipeStep, source: DecoderSource) -> dict[str, Any] | None:
    """A structural step's recovery (finetune=E, distill=true), refused where no training text is known."""
    given = [key for key in RECOVERY_KEYS if key in step.options]
    if given and not has_training_text(source):
        raise UsageError(
            f"recipe {recipe.text!r}: {given[0]}= needs the decoder's training text, which only pydoc-lm carries "
            f"so far; {step.name} without it"
        )
    if int(step.option("finetune")) > 0:
        return {
            "epochs": int(step.option("finetune")),
            "distill": bool(step.option("distill")),
            "temperature": float(step.option("temperature")),
            "alpha": float(step.option("alpha")),
        }
    if step.option("distill"):
        raise UsageError(f"recipe {recipe.text!r}: distill=true needs finetune=E (the epochs it distils for)")
    return None


def _widths(recipe: Recipe, step: RecipeStep) -> dict[str, Any]:
    for key, why in STRUCTURED_NOT_FOR_DECODERS.items():
        if key in step.options and step.options[key] != step.kind.options[key].default:
            raise UsageError(f"recipe {recipe.text!r}: {key}= does not apply to a decoder: {why}")
    assert step.value is not None
    return {
        "ratio": float(step.value),
        "heads": bool(step.option("heads")),
        "importance": str(step.option("importance")),
        "round_to": int(step.option("round_to")),
    }


def has_training_text(source: DecoderSource) -> bool:
    """Whether speedproof holds the text the source was trained on (pydoc-lm's training topics)."""
    return source.kind == "zoo" and "held_out_perplexity" in source.facts


def build_decoder(plan: DecoderBuildPlan, source: DecoderSource, destination: Path, baseline: Path | None) -> dict:
    """Build the plan's GenAI folder at `destination` (the identity: `baseline`'s folder itself); its facts."""
    result = build_decoders([plan], source, [destination], baseline)[0]
    if isinstance(result, SpeedproofError):
        raise result
    return result


def build_decoders(
    plans: Sequence[DecoderBuildPlan], source: DecoderSource, destinations: Sequence[Path], baseline: Path | None = None
) -> list[dict[str, Any] | SpeedproofError]:
    """Each plan's folder facts, or why it could not be built. The builds run in one contained process (the
    builder's imports take ~9 s on 2 cores: paid once); a build that fails there is that plan's error, and when
    the process itself fails (a crash, the time limit) each build is tried again alone, so one bad build never
    takes the others with it. The identity is the first plan's folder (or `baseline`'s) measured again."""
    results: list[dict[str, Any] | SpeedproofError | None] = [None] * len(plans)
    to_build = []
    for index, plan in enumerate(plans):
        if not plan.identity:
            if source.buildable:
                to_build.append(index)
            else:
                results[index] = folder_facts(source.folder, plan, source.layers, 0.0)
    if to_build:
        try:
            built = _run_builds(source, [(plans[index], destinations[index]) for index in to_build])
        except SpeedproofError:
            built = []
            for index in to_build:
                try:
                    built += _run_builds(source, [(plans[index], destinations[index])])
                except SpeedproofError as error:
                    built.append(error)
        for index, outcome in zip(to_build, built, strict=True):
            results[index] = outcome
    for index, plan in enumerate(plans):
        if plan.identity:
            first = results[0] if plans and not plans[0].identity else None
            folder = baseline or (Path(first["path"]) if isinstance(first, dict) else None)
            results[index] = (
                folder_facts(folder, plan, source.layers, 0.0)
                if folder is not None
                else SpeedproofError(f"{plan.recipe}: the baseline could not be built, so there is nothing to repeat")
            )
    return [result if result is not None else SpeedproofError("not built") for result in results]


def _run_builds(
    source: DecoderSource, builds: Sequence[tuple[DecoderBuildPlan, Path]]
) -> list[dict[str, Any] | SpeedproofError]:
    labels = ", ".join(plan.recipe for plan, _ in builds)
    result = run_contained(
        "harness.decoders.build_step",
        {
            "hf_folder": str(source.folder.resolve()),
            "builds": [
                {
                    "out_folder": str(destination.resolve()),
                    "precision": plan.precision,
                    "extra_options": plan.extra_options,
                    "drop": list(plan.drop) if plan.drop is not None else None,
                    "widths": plan.widths,
                    "recovery": plan.recovery,
                }
                for plan, destination in builds
            ],
        },
        f"decoder {source.name} ({labels})",
        "building it with ONNX Runtime GenAI's model builder",
        in_scratch=True,
    )
    outcomes: list[dict[str, Any] | SpeedproofError] = []
    for (plan, destination), built in zip(builds, result["builds"], strict=True):
        if built["status"] == "ok":
            facts = folder_facts(destination, plan, int(built["layers"]), float(built["seconds"]))
            for key in ("recovery", "widths"):
                if built.get(key):
                    facts[key] = built[key]
            outcomes.append(facts)
        else:
            outcomes.append(InputError(f"decoder {source.name} ({plan.recipe}): {built['error']}"))
    return outcomes


def drop_decoder_layers(source: Path, destination: Path, count: int, keep: str) -> int:
    """A copy of the Hugging Face folder without `count` of its decoder layers (`kept_indices`: by default middle
    ones), the kept ones renumbered and the config's layer count (and per-layer lists) cut to match."""
    from safetensors.torch import load_file, save_file

    config = json.loads((source / "config.json").read_text())
    layers = int(config["num_hidden_layers"])
    kept = kept_indices(layers, count, keep)
    renumber = {old: new for new, old in enumerate(kept)}
    destination.mkdir(parents=True)
    tensors: dict[str, Any] = {}
    files = {"model.safetensors"} if (source / "model.safetensors").is_file() else set()
    index = source / "model.safetensors.index.json"
    if index.is_file():
        files = set(json.loads(index.read_text())["weight_map"].values())
    for name in sorted(files):
        for key, tensor in load_file(str(source / name)).items():
            match = LAYER_KEY.match(key)
            if match is None:
                tensors[key] = tensor
            elif int(match.group(1)) in renumber:
                tensors[f"model.layers.{renumber[int(match.group(1))]}.{key[match.end() :]}"] = tensor
    save_file(tensors, str(destination / "model.safetensors"), metadata={"format": "pt"})
    config["num_hidden_layers"] = len(kept)
    for key, value in list(config.items()):
        if isinstance(value, list) and len(value) == layers and key.startswith("layer"):
            config[key] = [value[index] for index in kept]  # per-layer settings (layer_types, ...)
    (destination / "config.json").write_text(json.dumps(config, indent=2))
    for item in source.iterdir():
        if item.is_file() and item.name not in ("config.json", "model.safetensors") and "safetensors" not in item.name:
            shutil.copy2(item, destination / item.name)
    return len(kept)


def folder_facts(folder: Path, plan: DecoderBuildPlan, layers: int, build_s: float) -> dict[str, Any]:
    """Size, content hash and build facts of a GenAI folder (the hash over every file's name and bytes)."""
    digest = hashlib.sha256()
    total = 0
    model_bytes = 0
    for path in sorted(item for item in folder.rglob("*") if item.is_file()):
        relative = path.relative_to(folder).as_posix()
        size = path.stat().st_size
        total += size
        if path.suffix in (".onnx", ".data") or path.name.endswith(".onnx.data"):
            model_bytes += size
        digest.update(relative.encode() + b"\0" + str(size).encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return {
        "kind": "genai-folder",
        "path": str(folder.resolve()),
        "sha256": digest.hexdigest(),
        "bytes": model_bytes or total,
        "folder_bytes": total,
        "layers": layers,
        "build": plan.as_dict(),
        "build_s": round(build_s, 2),
    }
