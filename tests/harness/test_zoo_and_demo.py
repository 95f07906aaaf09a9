"""Zoo models (torchvision, random weights) exported offline, and `speedproof demo` end to end."""

import json

import pytest

from harness.cli import EXIT_OK, main
from harness.errors import SpeedproofError
from harness.zoo import ZOO, zoo_model
from targets.compatibility import default_target_name
from targets.host import fingerprint_host
from tests.harness.test_cli import FAST_FLAGS

pytest.importorskip("torchvision", reason="zoo models need the vision extra (torchvision)")


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEEDPROOF_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_zoo_labels_random_weight_models_latency_only():
    random_weights = {"resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "encoder-mini"}
    assert random_weights | {"digits-cnn"} == set(ZOO)
    assert all(ZOO[name].latency_only for name in random_weights)
    assert not ZOO["digits-cnn"].latency_only
    with pytest.raises(SpeedproofError, match='did you mean "mobilenet_v2"'):
        zoo_model("mobilenet_v3")


@pytest.mark.slow
def test_demo_benchmarks_both_models_and_caches_exports(private_cache, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["demo", "--out", str(out), *FAST_FLAGS]) == EXIT_OK
    printed = capsys.readouterr().out
    target = default_target_name(fingerprint_host())
    assert f"== resnet18 on {target} ==" in printed and f"== mobilenet_v2 on {target} ==" in printed
    records = [json.loads(path.read_text()) for path in sorted(out.glob("*.json"))]
    assert sorted({cell["model"] for record in records for cell in record["cells"]}) == ["mobilenet_v2", "resnet18"]
    assert all(cell["status"] == "ok" for record in records for cell in record["cells"])
    cached = sorted(path.name.split("-random-")[0] for path in (private_cache / "zoo").glob("*.onnx"))
    assert cached == ["mobilenet_v2", "resnet18"]
