"""speedproof: does a compressed model really run faster on the hardware it will run on?

`harness` is the engine that plans and judges: model sources, recipes, variants, measurement
orchestration and statistics, verdicts, records, reports and the CLI. It sits on `exporters`
(artifacts) and `targets` (hardware, backends, runners). It imports nothing heavy at import time.

The Python API (`harness.api`, re-exported here on first use):

    from harness import verify
    result = verify("digits-cnn", recipes=["structured:0.3:round_to=8:finetune=16"], max_accuracy_drop=0.02)
    for cell in result.verdicts:
        print(cell.variant, cell.verdict.decision, cell.speedup.ratio)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.version import __version__
from targets.errors import ConfigurationError, InputError, SpeedproofError, UsageError

if TYPE_CHECKING:
    from harness.api import bench, build_variants, compare, gate, load_record, search_recipes, sensitivity, verify
    from harness.results import Cell, Result


_API = ("bench", "build_variants", "verify", "compare", "gate", "search_recipes", "sensitivity", "load_record")
_RESULTS = ("Result", "Cell")

__all__ = [
    "bench",
    "build_variants",
    "verify",
    "compare",
    "gate",
    "search_recipes",
    "sensitivity",
    "load_record",
    "Result",
    "Cell",
    "SpeedproofError",
    "UsageError",
    "ConfigurationError",
    "InputError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """The API's functions and result types, imported when first asked for (PEP 562)."""
    if name in _API:
        from harness import api

        return getattr(api, name)
    if name in _RESULTS:
        from harness import results

        return getattr(results, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
