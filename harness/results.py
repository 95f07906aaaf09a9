"""Typed results for the Python API: a run's record read back as the dataclasses that wrote it.

`Result` holds the record as written (`record`, the JSON's dict, which stays the source of truth)
and where it lies (`path`); `cells` are its measured, failed and skipped cells, each with its
`verdict` (`harness.verdict.reasons.Verdict`) and `speedup` (`harness.measure.speedup.SpeedupEstimate`)
where the command judged one. `verdicts` are the cells that carry a verdict, `accepted()` those
ACCEPTed. A record from disk reads the same way (`harness.load_record`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.measure.speedup import SpeedupEstimate
from harness.records.cells import CellStatus
from harness.verdict.reasons import Decision, Reason, ReasonCode, Verdict
from targets.errors import InputError

_SPEEDUP_FIELDS = {item.name for item in fields(SpeedupEstimate)}


def verdict_from_dict(data: dict[str, Any], where: str) -> Verdict:
    """The Verdict a record's `verdict` object was written from."""
    try:
        return Verdict(
            decision=Decision(data["decision"]),
            reasons=tuple(Reason(ReasonCode(item["code"]), str(item["message"])) for item in data.get("reasons", [])),
            hints=tuple(data.get("hints", [])),
            notes=tuple(data.get("notes", [])),
            realization=data.get("realization"),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{where}: the verdict cannot be read ({type(error).__name__}: {error})") from None


def speedup_from_dict(data: dict[str, Any], where: str) -> SpeedupEstimate:
    """The SpeedupEstimate a record's `speedup` object was written from (fields it lacks keep their defaults)."""
    try:
        return SpeedupEstimate(**{key: value for key, value in data.items() if key in _SPEEDUP_FIELDS})
    except TypeError as error:
        raise InputError(f"{where}: the speedup cannot be read ({error})") from None


@dataclass(frozen=True)
class Cell:
    """One (variant, backend, batch size) of a run: what bench measured, or what verify, gate and
    compare compared against the baseline and decided. `raw` is the record's own dict of the cell
    (every field it has: artifact facts, the A/B schedule, memory, warnings)."""

    model: str
    variant: str
    backend: str
    batch_size: int | str
    status: CellStatus
    error: str | None
    reference: bool  # the baseline's own cell of an A/B run: no verdict
    latency_ms: dict[str, float] | None
    quality: dict[str, Any] | None
    speedup: SpeedupEstimate | None
    verdict: Verdict | None
    target: str | None  # gate cells name theirs; other records have one target (`Result.target`)
    raw: dict[str, Any] = field(repr=False)

    @property
    def accepted(self) -> bool:
        return self.verdict is not None and self.verdict.accepted

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> Cell:
        verdict, speedup = data.get("verdict"), data.get("speedup")
        try:
            status = CellStatus(data["status"])
        except (KeyError, ValueError):
            raise InputError(f"{where}: status {data.get('status')!r}; expected ok, failed or skipped") from None
        return cls(
            model=str(data.get("model")),
            variant=str(data.get("variant")),
            backend=str(data.get("backend")),
            batch_size=data.get("batch_size", "-"),
            status=status,
            error=data.get("error") or data.get("skipped"),
            reference=bool(data.get("reference")),
            latency_ms=data.get("latency_ms"),
            quality=data.get("quality"),
            speedup=speedup_from_dict(speedup, where) if isinstance(speedup, dict) else None,
            verdict=verdict_from_dict(verdict, where) if isinstance(verdict, dict) else None,
            target=data.get("target"),
            raw=data,
        )


@dataclass(frozen=True)
class Result:
    """What a command's run produced: its record (`record`, as written to `path`) read as cells and
    verdicts. Sections a command adds (gate, compare, search, sensitivity) are in `section(name)`."""

    record: dict[str, Any] = field(repr=False)
    path: Path | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any], path: Path | None = None) -> Result:
        return cls(record=record, path=path)

    @cached_property
    def cells(self) -> tuple[Cell, ...]:
        """Every cell of the record, read when first asked for (a part a newer speedproof wrote that
        this one cannot read is an InputError then, naming the cell)."""
        where = str(self.path) if self.path else "record"
        return tuple(
            Cell.from_dict(cell, f"{where}: cells[{index}]")
            for index, cell in enumerate(self.record.get("cells") or [])
        )

    @property
    def command(self) -> str:
        return str(self.record.get("command"))

    @property
    def run_id(self) -> str:
        return str(self.record.get("run_id"))

    @property
    def target(self) -> str | None:
        """The target profile the run measured on (None for a gate: its cells name theirs)."""
        target = self.record.get("target")
        return str(target["name"]) if isinstance(target, dict) and "name" in target else None

    @property
    def variants(self) -> list[dict[str, Any]]:
        """The artifacts the run built, one dict per recipe or candidate (its facts, quality, status)."""
        return list(self.record.get("variants") or [])

    @property
    def verdicts(self) -> tuple[Cell, ...]:
        """The cells that carry a verdict: every variant and candidate compared (not the baseline)."""
        return tuple(cell for cell in self.cells if cell.verdict is not None)

    def accepted(self) -> tuple[Cell, ...]:
        """The cells whose variant was ACCEPTed."""
        return tuple(cell for cell in self.cells if cell.accepted)

    def rejected(self) -> tuple[Cell, ...]:
        return tuple(cell for cell in self.verdicts if not cell.accepted)

    def failed(self) -> tuple[Cell, ...]:
        """The cells that produced no measurement (a failed build, a crashed or hung worker)."""
        return tuple(cell for cell in self.cells if cell.status == CellStatus.FAILED)

    def all_accepted(self) -> bool:
        """Every variant ACCEPTed and the baseline measured (verify's exit code 0)."""
        return all(cell.accepted or (cell.reference and cell.status == CellStatus.OK) for cell in self.cells)

    def verdict_of(self, variant: str) -> Verdict | None:
        """The verdict on a variant, by its recipe string or candidate label (the first, for a gate
        that verified it on several targets)."""
        return next((cell.verdict for cell in self.verdicts if cell.variant == variant), None)

    def section(self, name: str) -> Any:
        """A command's own part of the record: "gate", "compare", "search", "sensitivity"; None when absent."""
        return self.record.get(name)
