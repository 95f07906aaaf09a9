"""The variant builder used directly: one artifact per recipe with facts and quality from the
runner's backend, and a failed recipe that leaves nothing behind."""

from harness.variants.preparation import prepare_variants
from targets.runners.compatibility import resolve_target
from targets.runners.local import LocalRunner


def test_builds_each_recipe_with_facts_and_quality_and_drops_failed_ones(tiny_conv_onnx, tmp_path):
    runner = LocalRunner()
    resolved = resolve_target("x86-cpu", 1, runner)
    prepared = prepare_variants(
        str(tiny_conv_onnx), ("identity,int8-dynamic,int8-static:calibration=8",), (), resolved, runner, tmp_path
    )
    built = {variant.recipe: variant for variant in prepared.variants}
    assert list(built) == ["baseline", "identity", "int8-dynamic", "int8-static:calibration=8"]
    assert all(variant.ok for variant in built.values()), [variant.error for variant in built.values()]
    # an .onnx source is measured where it is; variants go to the artifacts folder
    assert built["baseline"].artifact_path == tiny_conv_onnx
    assert built["identity"].artifact_path.parent == tmp_path / "artifacts"
    assert built["identity"].artifact["sha256"] != "" and built["identity"].artifact["params"] > 0
    assert built["baseline"].quality == {"metric": "fidelity", "reference": True}
    assert built["identity"].quality["top1_agreement"] == 1.0  # no labels: fidelity to the baseline
    assert "ConvInteger" in built["int8-dynamic"].artifact["op_histogram"]
    assert any("generated inputs" in warning for warning in built["int8-static:calibration=8"].warnings)


def test_a_failed_recipe_leaves_no_half_made_artifact(tmp_path):
    runner = LocalRunner()
    resolved = resolve_target("x86-cpu", 1, runner)
    prepared = prepare_variants(
        "tests.tiny_models:tiny_cnn_without_data", ("structured:0.5:finetune=1",), (), resolved, runner, tmp_path
    )
    failed = prepared.variants[1]
    assert not failed.ok and "needs training data" in failed.error and failed.artifact_path is None
    assert not list((tmp_path / "artifacts").glob("01-*"))
