"""The Python API with values the CLI's argument types used to stop (a count of 0 or -1, a float, a
bool, a NaN, a repeated batch size, a bare number for a list): each is a UsageError before anything
is written."""

import pytest

import harness
from harness import UsageError, bench, verify
from tests.helpers import TINY_CNN

HOSTILE_CALLS = {
    "threads=0": lambda out: verify(TINY_CNN, recipes=["identity"], threads=0, out=out),
    "threads=-1": lambda out: bench(TINY_CNN, threads=-1, out=out),
    "threads=True": lambda out: bench(TINY_CNN, threads=True, out=out),
    "threads=1.5": lambda out: bench(TINY_CNN, threads=1.5, out=out),
    "batch_sizes=[0]": lambda out: bench(TINY_CNN, batch_sizes=[0], out=out),
    "batch_sizes=[-2]": lambda out: verify(TINY_CNN, recipes=["identity"], batch_sizes=[-2], out=out),
    "batch_sizes=[4, 4]": lambda out: verify(TINY_CNN, recipes=["identity"], batch_sizes=[4, 4], out=out),
    "batch_sizes=8": lambda out: bench(TINY_CNN, batch_sizes=8, out=out),
    "trials=0": lambda out: harness.search_recipes(TINY_CNN, trials=0, out=out),
    "budget_s=nan": lambda out: harness.search_recipes(TINY_CNN, budget_s=float("nan"), out=out),
    "seed='x'": lambda out: harness.search_recipes(TINY_CNN, seed="x", out=out),
    "finetune=2.5": lambda out: harness.compare(TINY_CNN, finetune=2.5, out=out),
    "recipes=5": lambda out: verify(TINY_CNN, recipes=5, out=out),
    "candidates=5": lambda out: verify(TINY_CNN, candidates=5, out=out),
    "min_speedup=nan": lambda out: verify(TINY_CNN, recipes=["identity"], out=out, min_speedup=float("nan")),
    "min_iterations=-5": lambda out: bench(TINY_CNN, out=out, min_iterations=-5),
}


@pytest.mark.parametrize("case", list(HOSTILE_CALLS))
def test_values_the_cli_could_not_pass_are_usage_errors_before_anything_runs(case, tmp_path):
    """The CLI's argument types stopped these; the API checks them itself."""
    with pytest.raises(UsageError):
        HOSTILE_CALLS[case](tmp_path)
    assert list(tmp_path.iterdir()) == []
