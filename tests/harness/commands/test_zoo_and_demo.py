"""Zoo models (torchvision, random weights) exported offline, and `speedproof demo` end to end,
which also trains both digits models with their full schedules and checks their test accuracy."""

import json

import pytest

from harness.cli import EXIT_OK, main
from harness.commands.demo import DIGITS_GOOD_RECIPE, TRANSFORMER_RECIPE
from harness.models.zoo import ZOO, zoo_model
from targets.errors import SpeedproofError
from targets.host.fingerprint import fingerprint_host
from targets.runners.compatibility import default_target_name
from tests.helpers import FAST_FLAGS

pytest.importorskip("torchvision", reason="zoo models need the vision extra (torchvision)")


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEEDPROOF_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_zoo_labels_random_weight_models_latency_only():
    random_weights = {"resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "encoder-mini"}
    assert random_weights | {"digits-cnn", "digits-transformer"} == set(ZOO)
    assert all(ZOO[name].latency_only for name in random_weights)
    assert not ZOO["digits-cnn"].latency_only and not ZOO["digits-transformer"].latency_only
    with pytest.raises(SpeedproofError, match='did you mean "mobilenet_v2"'):
        zoo_model("mobilenet_v3")


@pytest.mark.slow
def test_demo_verifies_both_models_and_writes_the_html_report(private_cache, tmp_path, capsys):
    out = tmp_path / "results"
    fast_policy = ["--burst-duration-s", "0.2", "--min-pairs", "4", "--max-pair-duration-s", "20"]
    assert main(["demo", "--out", str(out), *FAST_FLAGS, *fast_policy]) == EXIT_OK
    printed = capsys.readouterr().out
    target = default_target_name(fingerprint_host())
    assert f"== digits-cnn on {target} ==" in printed and f"== resnet18 on {target} ==" in printed
    records = {
        json.loads(path.read_text())["model_source"]["spec"]: json.loads(path.read_text())
        for path in sorted(out.glob("*.json"))
    }
    assert sorted(records) == ["digits-cnn", "digits-transformer", "resnet18"]
    for model, record in records.items():
        cells = {cell["variant"]: cell for cell in record["cells"]}
        assert all(cell["status"] == "ok" for cell in cells.values())
        assert model != "resnet18" or cells["identity"]["verdict"]["decision"] == "REJECT"
        assert all(cell["verdict"] for name, cell in cells.items() if name != "baseline")
    resnet = {cell["variant"]: cell for cell in records["resnet18"]["cells"]}
    # the known answer the product exists for: channels removed -> faster; zeros -> only smaller
    assert resnet["structured:0.5"]["verdict"]["decision"] == "ACCEPT"
    assert resnet["unstructured:0.9"]["verdict"]["decision"] == "REJECT"
    digits = {cell["variant"]: cell for cell in records["digits-cnn"]["cells"]}
    assert digits["structured:0.5:finetune=4"]["accuracy"] is not None  # real accuracy, not fidelity
    # the good compression shown beside the traps keeps its accuracy within the limit
    good = digits[DIGITS_GOOD_RECIPE]
    assert good["accuracy"] >= digits["baseline"]["accuracy"] - 0.01
    transformer = {cell["variant"]: cell for cell in records["digits-transformer"]["cells"]}
    dropped = transformer[TRANSFORMER_RECIPE]
    assert dropped["accuracy"] is not None and dropped["verdict"]["decision"] in ("ACCEPT", "REJECT")
    # the demo trained both digits models with their full schedules (no other test does: once is enough)
    for trained in ("digits-cnn", "digits-transformer"):
        (facts_file,) = (private_cache / "zoo").glob(f"{trained}-v*.json")
        assert json.loads(facts_file.read_text())["test_accuracy"] >= 0.97, trained
    report = next(out.glob("demo-*.html")).read_text()
    assert "digits-cnn" in report and "resnet18" in report and "data:image/png;base64," in report
    cached = sorted(path.name.split("-random-")[0] for path in (private_cache / "zoo").glob("resnet*.onnx"))
    assert cached == ["resnet18"]
