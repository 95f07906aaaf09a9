"""The variants job: build every recipe's artifact into a folder that is kept under `--out`, and
write the record (facts and quality of each variant) beside it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.models.sources import source_label
from harness.progress import ProgressCallback, no_progress
from harness.records.provenance import new_run_id
from harness.records.run_record import Record, RecordHeader, RunRecord
from harness.records.store import check_writable_folder, kept_run_folder, write_record
from harness.variants.preparation import model_source_entry, prepare_variants
from targets.inputs import InputSettings
from targets.runners.base import Runner
from targets.runners.choose import runner_for
from targets.runners.compatibility import resolve_target


@dataclass(frozen=True)
class VariantsRequest:
    model: str
    recipes: tuple[str, ...]
    target: str | None = None
    backend: str | None = None  # None: the profile's first
    remote: str | None = None  # ssh://... : measure on that machine (targets.runners.ssh)
    ssh_config: Path | None = None
    threads: int | None = None
    input_shapes: tuple[str, ...] = ()
    inputs: InputSettings = field(default_factory=InputSettings)  # --batch-axis, --input-value
    out_dir: Path = Path("results")


def run_variants(
    request: VariantsRequest, progress: ProgressCallback = no_progress, runner: Runner | None = None
) -> tuple[Record, Path]:
    """Build the variants into a new folder under `out_dir` and write the record beside it."""
    check_writable_folder(request.out_dir)
    runner = runner or runner_for(request.remote, request.ssh_config, request.target, progress)
    resolved = resolve_target(request.target, request.threads, runner, request.backend)
    run_id = new_run_id()
    label = "variants-" + source_label(request.model)
    work_dir = kept_run_folder(request.out_dir, label, run_id)
    prepared = prepare_variants(
        request.model,
        request.recipes,
        request.input_shapes,
        resolved,
        runner,
        work_dir,
        progress,
        inputs=request.inputs,
    )
    record = RunRecord(
        header=RecordHeader.new("variants", runner.fingerprint(), resolved, run_id),
        model_source=model_source_entry(request.model, prepared),
        artifact_dir=str((work_dir / "artifacts").resolve()),
        variants=[variant.as_dict() for variant in prepared.variants],
    ).as_dict()
    return record, write_record(record, request.out_dir, label=label)
