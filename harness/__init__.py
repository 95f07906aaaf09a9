"""speedproof: does a compressed model really run faster on the hardware it will run on?

`harness` is the engine that plans and judges: model sources, recipes, variants, measurement
orchestration and statistics, verdicts, records, reports and the CLI. It sits on `exporters`
(artifacts) and `targets` (hardware, backends, runners). It imports nothing heavy at import time.
"""

from targets.errors import SpeedproofError

__version__ = "0.1.0"

__all__ = ["SpeedproofError", "__version__"]
