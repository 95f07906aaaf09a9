"""The child side of decoder builds (`python -m harness.decoders.build_step REQUEST.json`): ONNX Runtime
GenAI's model builder run on a Hugging Face folder for each build of the request (layers dropped, widths pruned
and the cut model recovered first where the recipe says), as its own command line runs it, in one contained process
(`harness.models.contained.run_contained`: a time limit, a memory cap, its scratch folder for the builder's
cache). The builder prints its progress to stdout; here it goes to stderr, whose tail a failure quotes."""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from harness.decoders.build import drop_decoder_layers
from harness.decoders.recovery import recover_decoder
from harness.decoders.width_pruning import prune_decoder_widths
from harness.models.contained import contained_main
from targets.errors import SpeedproofError
from targets.quick_exit import exit_quickly

BUILDER_MODULE = "onnxruntime_genai.models.builder"


def builder_arguments(hf_folder: str, build: dict[str, Any]) -> list[str]:
    """The builder's command line for one build: input folder, output folder, precision, CPU, options."""
    arguments = [BUILDER_MODULE, "-i", hf_folder, "-o", build["out_folder"]]
    arguments += ["-p", build["precision"], "-e", "cpu", "-c", "builder-cache"]
    options = build.get("extra_options") or {}
    if options:
        arguments += ["--extra_options", *(f"{key}={value}" for key, value in options.items())]
    return arguments


def _build_all(request: dict[str, Any]) -> dict[str, Any]:
    os.environ["HF_HUB_OFFLINE"] = "1"  # the builder reads the local folder; nothing may be downloaded
    try:
        import onnxruntime_genai.models.builder  # noqa: F401 - imported once for every build of the request
    except ImportError as error:
        return {
            "status": "failed",
            "error": f"ONNX Runtime GenAI's model builder cannot be imported ({error}); install "
            "pip install 'speedproof[llm]'",
        }
    return {"status": "ok", "builds": [_build_one(request["hf_folder"], build) for build in request["builds"]]}


def _build_one(hf_folder: str, build: dict[str, Any]) -> dict[str, Any]:
    """One build; what it raises is its own failure, the next build still runs. Each cut (layers dropped, widths
    pruned) writes a new folder in the scratch folder, the one before it removed; recovery trains the last."""
    start = time.monotonic()
    original = Path(hf_folder)
    source = original
    facts: dict[str, Any] = {"layers": int(json.loads((source / "config.json").read_text())["num_hidden_layers"])}

    def cut_to(stage: str) -> Path:
        return Path(f"{stage}-{Path(build['out_folder']).name}").resolve()

    def moved_to(folder: Path) -> Path:
        if source != original:
            shutil.rmtree(source, ignore_errors=True)
        return folder

    try:
        if build.get("drop"):
            count, keep = build["drop"]
            facts["layers"] = drop_decoder_layers(source, cut_to("dropped"), int(count), str(keep))
            source = moved_to(cut_to("dropped"))
        if build.get("widths"):
            widths = build["widths"]
            facts["widths"] = prune_decoder_widths(
                source, cut_to("narrowed"), widths["ratio"], widths["heads"], widths["importance"], widths["round_to"]
            )
            source = moved_to(cut_to("narrowed"))
        if build.get("recovery"):
            facts["recovery"] = recover_decoder(source, original, build["recovery"])
        _run_builder(builder_arguments(str(source), build))
    except SpeedproofError as error:
        return {"status": "failed", "error": str(error)}
    except MemoryError:
        raise
    except Exception as error:
        traceback.print_exc()
        return {"status": "failed", "error": f"the model builder failed: {type(error).__name__}: {error}"}
    finally:
        if source != original:
            shutil.rmtree(source, ignore_errors=True)
    return {"status": "ok", **facts, "seconds": round(time.monotonic() - start, 2)}


def _run_builder(arguments: list[str]) -> None:
    saved = sys.argv
    sys.argv = arguments
    try:
        with contextlib.redirect_stdout(sys.stderr):
            runpy.run_module(BUILDER_MODULE, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise SpeedproofError(f"the model builder exited with {stop.code!r}") from None
    except NotImplementedError as error:
        raise SpeedproofError(f"the model builder does not support it: {error}") from None
    finally:
        sys.argv = saved


def _out_of_memory(request: dict[str, Any]) -> str:
    return (
        f"the model builder ran out of memory under the cap of {request['memory_mb']} MB (set "
        "SPEEDPROOF_SOURCE_MEMORY_MB to allow more)"
    )


def main(argv: list[str] | None = None) -> int:
    return contained_main(argv, "harness.decoders.build_step", _build_all, _out_of_memory)


if __name__ == "__main__":
    exit_quickly(main())
