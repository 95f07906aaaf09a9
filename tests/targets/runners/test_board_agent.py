"""The board agent's artifact cache in this process (no transport): files filed by content hash, and
bundles that put an ONNX model beside its external data files, refused when anything in them changed."""

import hashlib
import json

import pytest

from targets.runners import board_agent


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "board-cache"
    monkeypatch.setenv("SPEEDPROOF_BOARD_CACHE", str(folder))
    return folder


def _put(data: bytes, name: str) -> str:
    import io

    digest = hashlib.sha256(data).hexdigest()
    board_agent.put(digest, name, io.BytesIO(data))
    return digest


def _request(model: str, files: dict[str, str]) -> dict:
    return {
        "model": {"name": "m.onnx", "sha256": model},
        "files": [{"location": location, "sha256": sha} for location, sha in files.items()],
    }


def test_a_bundle_links_the_model_beside_its_data_and_is_reused(cache):
    model, weights = _put(b"graph", "m.onnx"), _put(b"weights", "w.bin")
    path = board_agent.bundle(_request(model, {"data/w.bin": weights}))["path"]
    folder = cache / "bundles"
    assert path.startswith(str(folder)) and path.endswith("/m.onnx")
    bundled = (folder / path.split("/")[-2]).resolve()
    assert (bundled / "m.onnx").read_bytes() == b"graph" and (bundled / "data" / "w.bin").read_bytes() == b"weights"
    manifest = json.loads((bundled / "manifest.json").read_text())
    assert manifest == {"model": "m.onnx", "files": {"m.onnx": model, "data/w.bin": weights}}
    board_agent.check_cached_artifact(path)  # intact: no error
    assert board_agent.bundle(_request(model, {"data/w.bin": weights}))["path"] == path
    # other weights beside the same graph are another bundle
    other = board_agent.bundle(_request(model, {"data/w.bin": _put(b"other weights", "w.bin")}))["path"]
    assert other != path


def test_a_changed_data_file_in_a_bundle_is_refused_and_linked_anew(cache):
    model, weights = _put(b"graph", "m.onnx"), _put(b"weights", "w.bin")
    path = board_agent.bundle(_request(model, {"w.bin": weights}))["path"]
    data = cache / "bundles" / path.split("/")[-2] / "w.bin"
    data.unlink()  # a hard link: replace it rather than write through to the cached original
    data.write_bytes(b"weightz")
    with pytest.raises(ValueError, match="w.bin: the cached file no longer hashes to"):
        board_agent.check_cached_artifact(path)
    assert board_agent.bundle(_request(model, {"w.bin": weights}))["path"] == path
    assert data.read_bytes() == b"weights"
    board_agent.check_cached_artifact(path)


@pytest.mark.parametrize("location", ["../w.bin", "/etc/w.bin", "", "manifest.json", "a\\..\\w.bin"])
def test_a_location_outside_the_bundle_is_refused(cache, location):
    model, weights = _put(b"graph", "m.onnx"), _put(b"weights", "w.bin")
    with pytest.raises(ValueError, match="not a location inside the model's folder"):
        board_agent.bundle(_request(model, {location: weights}))
    assert not list(cache.glob("bundles/*/*"))


def test_a_bundle_of_files_not_in_the_cache_says_to_put_them_first(cache):
    model = _put(b"graph", "m.onnx")
    with pytest.raises(ValueError, match="is not in this board's cache; put it first"):
        board_agent.bundle(_request(model, {"w.bin": hashlib.sha256(b"never sent").hexdigest()}))
    assert not [entry for entry in (cache / "bundles").iterdir()]  # the half-made folder is gone
