"""2:4 in the torch backend: finding the pattern in a real program, the reasons a layer stays dense,
the hints a record's facts give; on CUDA (marker `gpu`) the conversion to torch's sparse kernels."""

import numpy as np
import pytest
import torch

from exporters.torch_program import export_program
from harness.recipes.pruning import apply_semi_structured_masks, make_pruning_permanent
from targets.backends.torch.runner import TorchRunner
from targets.backends.torch.semi_structured import dense_reason, has_two_four_pattern, sparsify, two_four_hints
from tests.tiny_models import tiny_torch_transformer

BLOCKS = {"float16": (16, 16), "bfloat16": (16, 16), "int8": (32, 32)}  # cuSPARSELt's, as torch lists them


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """The tiny transformer as a dense program and with 2:4 masks folded in (the semi-structured recipe)."""
    folder = tmp_path_factory.mktemp("two-four")
    dense = tiny_torch_transformer()
    dense_path = export_program(dense.module, dense.example_inputs, folder / "dense.pt2", ["input"])
    pruned = tiny_torch_transformer()
    masked, _ = apply_semi_structured_masks(pruned.module)
    make_pruning_permanent(pruned.module)
    pruned_path = export_program(pruned.module, pruned.example_inputs, folder / "two-four.pt2", ["input"])
    return dense_path, pruned_path, masked


def test_the_pattern_needs_two_zeros_in_every_group_of_four():
    weight = torch.tensor([[0.0, 1.0, 0.0, 2.0, 3.0, 0.0, 0.0, 4.0]] * 2)
    assert has_two_four_pattern(weight)
    weight[1, 2] = 5.0  # one group with a single zero
    assert not has_two_four_pattern(weight)
    assert not has_two_four_pattern(torch.zeros(4, 6))  # input width not a multiple of 4
    assert not has_two_four_pattern(torch.zeros(8))  # not a layer weight


@pytest.mark.parametrize(
    ("kind", "shape", "dtype", "device", "expected"),
    [
        ("linear", (64, 128), "float16", "cuda", None),
        ("conv", (64, 128, 3, 3), "float16", "cuda", "linear layers only"),
        ("linear", (64, 128), "float16", "cpu", "CUDA only"),
        ("linear", (64, 128), "float32", "cuda", "no 2:4 kernel for float32"),
        ("linear", (40, 128), "float16", "cuda", "40x128 is not a multiple of cusparselt's 16x16 block"),
        ("linear", (64, 48), "int8", "cuda", "64x48 is not a multiple of cusparselt's 32x32 block"),
    ],
)
def test_reasons_a_two_four_layer_stays_dense(kind, shape, dtype, device, expected):
    reason = dense_reason(kind, shape, dtype, device, "cusparselt", BLOCKS)
    assert reason is None if expected is None else expected in reason


def test_on_the_cpu_every_two_four_layer_is_reported_dense_with_its_reason(programs):
    dense_path, pruned_path, masked = programs
    with TorchRunner(str(dense_path), threads=1, options={"device": "cpu"}) as runner:
        assert runner.runtime_facts() == {}  # no 2:4 pattern: nothing requested
    with TorchRunner(str(pruned_path), threads=1, options={"device": "cpu"}) as runner:
        facts = runner.runtime_facts()["semi_structured"]
        outputs = runner.outputs_as_numpy(runner.infer({"input": np.ones((2, 10, 32), np.float32)}))
    assert facts["requested_layers"] == masked and facts["sparse_layers"] == 0 and facts["kernel"] is None
    assert {layer["reason"] for layer in facts["layers"]} == {"torch's 2:4 kernels run on CUDA only"}
    assert "project.weight" in {layer["name"] for layer in facts["layers"]}
    assert outputs[0].shape[0] == 2
    with TorchRunner(str(pruned_path), threads=1, options={"device": "cpu", "sparsity": "dense"}) as runner:
        assert runner.runtime_facts() == {}  # asked never to try


def test_hints_from_the_facts_a_record_keeps():
    assert two_four_hints(None) == [] and two_four_hints({"requested_layers": 0}) == []
    layer = {"name": "fc.weight", "shape": [64, 128], "sparse": False, "reason": "torch's 2:4 kernels run on CUDA only"}
    (dense,) = two_four_hints({"requested_layers": 3, "sparse_layers": 0, "layers": [layer]})
    assert dense.startswith("2:4 requested but not used by the runtime: none of the 3 layers")
    assert "CUDA only" in dense
    partly = two_four_hints({"requested_layers": 3, "sparse_layers": 2, "small_sparse_layers": 2, "layers": [layer]})
    assert partly[0].startswith("2:4 used in 2 of 3 layers") and partly[1].startswith("GEMMs too small for 2:4")
    large = {"requested_layers": 2, "sparse_layers": 2, "small_sparse_layers": 0, "layers": []}
    assert two_four_hints(large) == []


@pytest.mark.gpu
def test_on_cuda_float16_two_four_linears_run_on_sparse_kernels_and_compute_the_same():
    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 64))
    apply_semi_structured_masks(layer)
    make_pruning_permanent(layer)
    module = torch.export.export(layer, (torch.randn(32, 128),)).module().to("cuda").half()
    x = torch.randn(32, 128, device="cuda", dtype=torch.float16)
    with torch.inference_mode():
        expected = module(x)
        report = sparsify(module, "cuda", "float16")
        result = module(x)
    assert report.requested == 2 and report.sparse == 2, report.as_dict()
    assert report.kernel in ("cusparselt", "cutlass")
    torch.testing.assert_close(result, expected, rtol=0.02, atol=0.02)
