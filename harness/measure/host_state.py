"""The host's speed state during an A/B run: the baseline's own level block by block, whether it
moved under the run, and whether it sits where this host usually runs the same artifact.

Shared VMs and CI runners switch between speed states that last tens of seconds. Measured on a
2-core EPYC VM (2 threads, bare ONNX Runtime loops): a 0.13 ms CNN took 0.18 ms for tens of seconds
at a time while its pruned variant's ratio fell from 1.46 to 1.00; on another such VM the same
pair's baseline moved between 0.18, 0.23 and 0.31 ms and the ratio between 1.55 and 2.4, while at
1 thread both stayed put. A verdict from pairs inside one state speaks of that state, and nothing
inside those pairs can tell. The baseline's level can: within the run (blocks at different levels:
the host moved, and the interval, which counts blocks, spans both), and against this host's
earlier runs of the same artifact (`LevelHistory`). A run whose every block sat away from the usual
level by a factor k measured the ratio in a state in which the baseline's own speed was k times off:
the ratio at the usual speed may be off by as much (a state that slows one side and not the other), so
its interval is widened by k before it decides (`shift_factor`). A 2x speedup measured 1.3x away from
the usual level still decides (2.0 / 1.3 > 1.10); the 0.98x [0.97, 0.99] of a slow state does not
(0.99 x 1.3 > 1.0), and ends INCONCLUSIVE if the host never comes back within the run.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from targets.cache_files import file_sha256, speedproof_cache
from targets.errors import SpeedproofError
from targets.files_in import read_input_json
from targets.files_out import OWN_MARK, is_own_output, write_output

# a block's baseline level this far (relative) from another's, or from this host's usual level for
# the artifact, is another state: the states measured were 25-40% apart, the level's own noise
# between blocks of one state a few %
HOST_STATE_MARGIN = 0.15
# from this many blocks on, "the host moved" leaves out the highest and the lowest block's level: on
# this 2-core VM single 0.25 s bursts of resnet18 (23 ms) scattered past 15% with the host in one state
MOVED_TRIM_FROM = 5
# the history judges a run only once it holds this many earlier runs of the same artifact
HISTORY_MIN_RUNS = 3
# the history keeps the levels of this many latest runs
HISTORY_KEEP = 30
# a history file larger than this is not one speedproof wrote: it is ignored
HISTORY_MAX_BYTES = 1 << 16


def _within(level: float, reference: float) -> bool:
    return reference / (1.0 + HOST_STATE_MARGIN) <= level <= reference * (1.0 + HOST_STATE_MARGIN)


@dataclass(frozen=True)
class HostState:
    """The baseline's level per block of one run (ms for latency metrics, items/s for throughput)
    and this host's usual level for the same artifact (None until the history knows enough)."""

    block_levels: tuple[float, ...]
    unit: str = "ms"
    usual: float | None = None
    usual_runs: int = 0

    @property
    def level(self) -> float:
        return float(statistics.median(self.block_levels))

    def moved(self) -> bool:
        """Blocks of this run sat in different states: their levels further apart than the margin, the
        highest and the lowest left out from MOVED_TRIM_FROM blocks on (one outlying block is not a state)."""
        levels = sorted(self.block_levels)
        if len(levels) >= MOVED_TRIM_FROM:
            levels = levels[1:-1]
        return len(levels) > 1 and not _within(levels[-1], levels[0])

    def unusual_blocks(self) -> int:
        """Blocks away from this host's usual level (0 while there is none)."""
        if self.usual is None:
            return 0
        return sum(1 for level in self.block_levels if not _within(level, self.usual))

    def all_unusual(self) -> bool:
        """Every block so far sat away from this host's usual level for the artifact."""
        return bool(self.block_levels) and self.unusual_blocks() == len(self.block_levels)

    def shift_factor(self) -> float:
        """How far (>= 1, as a factor) the run's level sat from the usual one when every block sat away
        from it; 1.0 otherwise (a run that saw the usual level, or no history)."""
        if self.usual is None or not self.all_unusual():
            return 1.0
        return max(self.level / self.usual, self.usual / self.level)

    def text(self) -> str:
        """A sentence for notes and reasons."""
        fmt = (lambda value: f"{value:.3g} {self.unit}") if self.unit != "ms" else (lambda value: f"{value:.3g} ms")
        low, high = min(self.block_levels), max(self.block_levels)
        said = f"the baseline ran at {fmt(low)}" + (f" to {fmt(high)}" if self.moved() else "")
        said += f" over {len(self.block_levels)} blocks"
        if self.usual is not None:
            said += f"; its usual level on this host is {fmt(self.usual)} ({self.usual_runs} earlier runs)"
        return said

    def as_dict(self) -> dict[str, Any]:
        return {
            "block_levels": [round(level, 6) for level in self.block_levels],
            "unit": self.unit,
            "usual": None if self.usual is None else round(self.usual, 6),
            "usual_runs": self.usual_runs,
            "moved": self.moved(),
            "unusual_blocks": self.unusual_blocks(),
            "shift_factor": round(self.shift_factor(), 4),
            "margin": HOST_STATE_MARGIN,
        }


class LevelHistory:
    """This host's baseline levels for one (artifact, backend, options, threads, batch, metric), one
    file per key in the speedproof cache (`host-levels`, or $SPEEDPROOF_LEVEL_HISTORY). A damaged or
    foreign file is ignored and replaced; a cache that cannot be written costs the history, never the run."""

    def __init__(self, folder: Path, key: str) -> None:
        self.path = folder / f"{key}.json"

    @classmethod
    def for_artifact(
        cls, artifact_path: str, host: str, settings: dict[str, Any], folder: Path | None = None
    ) -> LevelHistory:
        """The history of `artifact_path` (by content) on `host` under `settings` (backend, options,
        threads, batch, metric: anything that changes the level)."""
        described = json.dumps({"sha256": file_sha256(Path(artifact_path)), "host": host, **settings}, sort_keys=True)
        key = hashlib.sha256(described.encode()).hexdigest()[:32]
        return cls(folder or speedproof_cache("host-levels", "SPEEDPROOF_LEVEL_HISTORY"), key)

    def levels(self) -> list[float]:
        try:
            if not is_own_output(self.path):  # never through a link: not ours either
                return []
            stored = read_input_json(self.path, "level history", HISTORY_MAX_BYTES)
            entries = stored.get("levels", []) if isinstance(stored, dict) else []
            return [
                float(entry["level"])
                for entry in entries
                if isinstance(entry, dict) and isinstance(entry.get("level"), (int, float)) and entry["level"] > 0
            ]
        except (OSError, ValueError, TypeError, KeyError, SpeedproofError):
            return []

    def usual(self) -> tuple[float | None, int]:
        """(the median level of the earlier runs, how many) ; None until HISTORY_MIN_RUNS."""
        levels = self.levels()
        if len(levels) < HISTORY_MIN_RUNS:
            return None, len(levels)
        return float(statistics.median(levels)), len(levels)

    def add(self, level: float) -> None:
        """Add one run's level (atomically; the oldest beyond HISTORY_KEEP dropped)."""
        entries: list[dict[str, Any]] = [{"level": value} for value in self.levels()][-(HISTORY_KEEP - 1) :]
        entries.append({"level": round(level, 6), "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_output(self.path, json.dumps({"mark": OWN_MARK, "levels": entries}), "level history")
        except (OSError, SpeedproofError):
            # a read-only or full cache, or a file there that is not speedproof's (a link, say, left as
            # it is): the run goes on without adding to the history
            pass
