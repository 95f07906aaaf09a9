"""Model sources resolved directly: an .onnx file, a package.module:function, and the errors for
what cannot be a source."""

import pytest

from harness.models.sources import is_onnx_file_source, resolve_model_source
from targets.errors import SpeedproofError


def test_an_onnx_file_is_measured_where_it_is(tiny_conv_onnx, tmp_path):
    source = resolve_model_source(str(tiny_conv_onnx), {}, tmp_path)
    assert (source.kind, source.name, source.onnx_path) == ("onnx-file", "tiny_conv", tiny_conv_onnx)
    assert not source.is_torch and not source.latency_only
    with pytest.raises(SpeedproofError, match="no torch model to transform"):
        source.torch_model()


def test_a_function_source_is_exported_with_its_data(tmp_path):
    source = resolve_model_source("tests.tiny_models:tiny_cnn", {}, tmp_path)
    assert source.kind == "function" and source.is_torch
    assert source.onnx_path.parent == tmp_path and source.onnx_path.is_file()
    assert {"train_data", "calibration_data", "eval_data"} <= source.provides
    assert source.torch_model() is source.torch_model()  # loaded once, then kept


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("missing/model.onnx", "model file not found"),
        ("weights.pt", "pickled torch files are not a model source"),
        ("resnet19", 'did you mean "resnet18"'),
        ("tests.tiny_models:no_such_function", "has no function 'no_such_function'"),
        ("no_such_package.module:build", "no module 'no_such_package' in the current folder"),
    ],
)
def test_what_cannot_be_a_source_is_a_clear_error(spec, message, tmp_path):
    with pytest.raises(SpeedproofError, match=message):
        resolve_model_source(spec, {}, tmp_path)


def test_onnx_file_sources_are_known_before_loading(tiny_conv_onnx):
    assert is_onnx_file_source(str(tiny_conv_onnx)) and is_onnx_file_source("not/there.onnx")
    assert not is_onnx_file_source("resnet18") and not is_onnx_file_source("pkg.mod:fn")


RANDOM_NET = """
import torch

def build():
    # no seed: every call draws other weights, as torchvision.models:squeezenet1_1() does
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
"""


def test_the_module_the_recipes_change_is_the_one_that_was_exported(tmp_path, monkeypatch, capsys):
    """A function that draws random weights on every call: the CLI's own call gets the exported
    module's weights, so a torch recipe changes the baseline that is measured, not another net."""
    import numpy as np
    import onnxruntime
    import torch

    from harness.cli import main

    (tmp_path / "random_net.py").write_text(RANDOM_NET)
    monkeypatch.chdir(tmp_path)
    source = resolve_model_source("random_net:build", {None: (1, 16)}, tmp_path / "work")
    module = source.torch_model().module
    example = np.random.default_rng(0).standard_normal((1, 16)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(source.onnx_path))
    exported = session.run(None, {session.get_inputs()[0].name: example})[0]
    with torch.no_grad():
        assert np.allclose(module(torch.from_numpy(example)).numpy(), exported, atol=1e-5)
    # the fp16 recipe checks its output against the torch module's: it held only by chance before
    assert main(["variants", "random_net:build", "--recipes", "fp16", "--input-shape", "1x16", "--out", "out"]) == 0
    assert "FAILED" not in capsys.readouterr().out
