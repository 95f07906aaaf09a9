"""torch.export programs (.pt2): exported with a dynamic batch, loaded with the plan's input names,
checked against the module, and described by the same facts as an ONNX artifact."""

import hashlib

import pytest
import torch

from exporters.artifacts import artifact_at
from exporters.torch_program import export_program, program_facts
from targets.backends.torch.programs import load_program
from targets.errors import SpeedproofError
from tests.tiny_models import tiny_cnn_without_data, tiny_encoder


def test_a_program_keeps_the_plan_names_and_a_dynamic_batch(tmp_path):
    model = tiny_cnn_without_data()
    path = export_program(model.module, model.example_inputs, tmp_path / "cnn.pt2", ["pixels"])
    program, names = load_program(path)
    assert names == ["pixels"]
    (declared,) = artifact_at(path).kind.model_inputs((program, names))
    assert declared.name == "pixels" and declared.dtype == "float32"
    assert isinstance(declared.dims[0], str) and declared.dims[1:] == (3, 16, 16)
    with torch.inference_mode():
        for batch in (1, 5):  # any batch, not only the example's 2
            assert program.module()(torch.randn(batch, 3, 16, 16)).shape == (batch, 4)


def test_program_facts_count_what_the_module_holds(tmp_path):
    model = tiny_cnn_without_data()
    path = export_program(model.module, model.example_inputs, tmp_path / "cnn.pt2", ["input"])
    facts = program_facts(path)
    assert facts.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert facts.bytes == path.stat().st_size and 0 < facts.zipped_bytes
    weights = sum(p.numel() for p in model.module.parameters())
    assert weights <= facts.params <= weights + 200  # plus the BatchNorm running statistics
    assert facts.nonzero_params <= facts.params
    # 3x3 convs at 16x16 dominate: stem 3->24, conv1 and conv2 24->24, expand 24->40 (1x1), linears
    convs = 16 * 16 * (24 * 3 * 9 + 2 * 24 * 24 * 9 + 40 * 24)
    assert convs <= facts.macs <= convs * 1.05
    assert facts.op_histogram["aten.conv2d"] == 4
    assert facts.alignment.layers == 6 and facts.alignment.misaligned_examples == (4,)  # the classifier


def test_zeroed_weights_show_in_nonzero_params_not_in_bytes(tmp_path):
    model = tiny_cnn_without_data()
    dense = program_facts(export_program(model.module, model.example_inputs, tmp_path / "dense.pt2", ["input"]))
    with torch.no_grad():
        for parameter in model.module.parameters():
            if parameter.dim() > 1:
                parameter[parameter.abs() < parameter.abs().median()] = 0.0
    sparse = program_facts(export_program(model.module, model.example_inputs, tmp_path / "sparse.pt2", ["input"]))
    assert sparse.nonzero_params < 0.6 * dense.nonzero_params
    assert sparse.bytes == pytest.approx(dense.bytes, rel=0.02) and sparse.zipped_bytes < dense.zipped_bytes
    assert sparse.macs == dense.macs


def test_integer_inputs_and_several_layers_export(tmp_path):
    model = tiny_encoder()
    path = export_program(model.module, model.example_inputs, tmp_path / "encoder.pt2", ["input_ids"])
    program, names = load_program(path)
    (declared,) = artifact_at(path).kind.model_inputs((program, names))
    assert declared.dtype == "int64" and declared.dims[1:] == (32,)


def test_a_file_that_is_no_program_is_named(tmp_path):
    bad = tmp_path / "broken.pt2"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SpeedproofError, match="broken.pt2: not a torch.export program"):
        load_program(bad)
    with pytest.raises(SpeedproofError, match="no such program file"):
        load_program(tmp_path / "missing.pt2")


def test_a_module_torch_export_cannot_trace_is_a_clear_error(tmp_path):
    class Branchy(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # control flow on a value: torch.export cannot trace it
                return x * 2
            return x

    with pytest.raises(SpeedproofError, match="torch.export of Branchy failed"):
        export_program(Branchy(), (torch.randn(2, 3),), tmp_path / "b.pt2", ["input"])
