"""Recipes: the grammar of recipe strings and the catalogue of recipe kinds. Importing this package
registers every step family, in the order `--help` lists them (so this block is not sorted)."""

# isort: skip_file
from harness.recipes import controls  # noqa: F401  (each module registers its recipe kinds)
from harness.recipes import pruning  # noqa: F401
from harness.recipes import lowrank  # noqa: F401
from harness.recipes import layer_dropping  # noqa: F401
from harness.recipes import onnx_steps  # noqa: F401
