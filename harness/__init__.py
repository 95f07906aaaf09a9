"""speedproof: does a compressed model really run faster on the hardware it will run on?

`harness` is the engine: model sources, the measurement protocol, statistics, result records,
the bench orchestration and the CLI. It imports nothing heavy at import time.
"""

from harness.errors import SpeedproofError

__version__ = "0.1.0"

__all__ = ["SpeedproofError", "__version__"]
