"""Regressions against a stored record (the gate's `--baseline`): a check object with one method,
as pytest-benchmark's `PercentageRegressionCheck`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.verdict.reasons import Decision


@dataclass(frozen=True)
class Regression:
    cell: str  # which cell, in words
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"cell": self.cell, "message": self.message}


@dataclass(frozen=True)
class RegressionCheck:
    """A variant regressed when the stored record accepted it and this run rejects it, or when the
    upper end of its speedup interval lies more than `max_regression` (relative) below the stored
    speedup."""

    max_regression: float

    def check(self, where: str, stored: dict[str, Any], now: dict[str, Any]) -> Regression | None:
        """Compare a cell of this run with the stored cell of the same variant (record dicts)."""
        now_speedup, verdict = now.get("speedup"), now.get("verdict") or {}
        if not now_speedup:
            return None
        if stored["verdict"]["decision"] == Decision.ACCEPT and verdict.get("decision") != Decision.ACCEPT:
            return Regression(where, f"{where} was ACCEPTED in the baseline record and is now REJECTED")
        floor = stored["speedup"]["ratio"] * (1.0 - self.max_regression)
        if now_speedup["ci_high"] < floor:
            return Regression(
                where,
                f"{where}: speedup {now_speedup['ratio']:.2f}x [{now_speedup['ci_low']:.2f}, "
                f"{now_speedup['ci_high']:.2f}] is below the stored {stored['speedup']['ratio']:.2f}x by more than "
                f"max_regression = {self.max_regression:.0%}",
            )
        return None


def stored_verdict_cells(stored: dict[str, Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The stored record's measured verdict cells by (target, model, variant, batch size, backend)."""
    default_target = (stored.get("target") or {}).get("name")
    return {
        cell_identity(cell, cell.get("target") or default_target): cell
        for cell in stored.get("cells", [])
        if cell.get("verdict") and cell.get("speedup")
    }


def cell_identity(cell: dict[str, Any], target: str | None) -> tuple[Any, ...]:
    return (target, cell["model"], cell["variant"], cell.get("batch_size"), cell.get("backend"))
