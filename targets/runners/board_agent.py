"""The board's side of a remote run: `python -m targets.runners.board_agent COMMAND`, started over
SSH by `targets.runners.ssh` once per step, speaking JSON on stdin/stdout. Only `targets` and the
runtimes are needed on the board (no torch unless a torch backend runs there).

Commands:
- `hello`: stdin {"backends": [{"name", "options"}]}; answers this board's speedproof version,
  fingerprint, usable CPUs, and for each backend why it cannot run here (null when it can).
- `has SHA256 NAME`: answers {"path": ...} when the artifact is in the board's cache with that
  content hash (checked), else {"path": null}.
- `put SHA256 NAME`: stdin is the file's bytes; stores them in the cache (temporary file, hash
  checked, then renamed) and answers {"path": ...}; a hash mismatch is an error, nothing is kept.
- `bundle`: stdin {"model": {"name", "sha256"}, "files": [{"location", "sha256"}]}, every file already
  cached (`put`): an ONNX model with its external data files, linked into one folder
  `bundles/KEY/` at the locations the model names (KEY: the sha256 of its manifest, so other weights
  make another folder); answers {"path": ...} of the model there.
- `cell`: stdin is a `WorkerRequest`; measures it in this process (a fresh one per cell, as a
  local one-shot worker) and answers the `CellResult`.
- `live`: the first stdin line is a `WorkerRequest`; then the live-worker protocol of
  `targets.runners.worker` (bursts on demand) on stdin/stdout.
- `outputs`: the first stdin line is {"artifact_path", "backend", "options", "threads"}, then an
  `.npz` of the feeds (feed_0_NAME, ...); answers the first output over all feeds as one `.npy`.

Answers go to a private copy of stdout and the real stdout points at stderr, so a runtime that
prints cannot corrupt them. Any failure is one JSON line {"status": "failed", "error", "kind"} and
exit status 1.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path, PurePosixPath
from typing import IO, Any

from targets.cache_files import CHUNK, file_sha256, speedproof_cache
from targets.quick_exit import exit_quickly

USAGE = "usage: python -m targets.runners.board_agent hello|has SHA NAME|put SHA NAME|bundle|cell|live|outputs"
BUNDLES = "bundles"  # board_cache()/bundles/KEY/: a model and its external data files, linked together
MANIFEST = "manifest.json"


def board_cache() -> Path:
    """Where artifacts copied to this board live, by content hash."""
    return speedproof_cache("board-artifacts", "SPEEDPROOF_BOARD_CACHE")


def speedproof_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("speedproof")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cached_path(sha256: str, name: str) -> Path:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256: {sha256!r}")
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a file name: {name!r}")
    return board_cache() / sha256 / name


def hello(request: dict[str, Any]) -> dict[str, Any]:
    from targets.backends import load_runner_class
    from targets.host.cpu_conditions import fastest_cpus_here
    from targets.host.fingerprint import fingerprint_host

    reasons = []
    for backend in request.get("backends") or []:
        try:
            reason = load_runner_class(backend["name"]).unavailable_reason(backend.get("options") or {})
        except Exception as error:  # a runtime that fails to import is a reason, not a crash
            reason = str(error)
        reasons.append(reason)
    return {
        "status": "ok",
        "speedproof": speedproof_version(),
        "fingerprint": fingerprint_host().as_dict(),
        "available_cpus": fastest_cpus_here(),
        "backends": reasons,
    }


def has(sha256: str, name: str) -> dict[str, Any]:
    path = _cached_path(sha256, name)
    if path.is_file() and file_sha256(path) == sha256:
        return {"status": "ok", "path": str(path)}
    return {"status": "ok", "path": None}


def put(sha256: str, name: str, data: IO[bytes]) -> dict[str, Any]:
    path = _cached_path(sha256, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".incoming-", delete=False) as handle:
        try:
            for chunk in iter(lambda: data.read(CHUNK), b""):
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            os.unlink(handle.name)
            raise
    if digest.hexdigest() != sha256:
        os.unlink(handle.name)
        raise ValueError(f"{name}: the bytes received hash to {digest.hexdigest()}, not {sha256} (copy damaged)")
    os.replace(handle.name, path)
    return {"status": "ok", "path": str(path)}


def bundle(request: dict[str, Any]) -> dict[str, Any]:
    """Link a cached model and its cached external data files into one folder, each at the location the
    model names (hard links, copies across file systems), and answer the model's path there."""
    model = request["model"]
    files = {model["name"]: model["sha256"]}
    for entry in request["files"]:
        location = _bundle_location(entry["location"])
        if location in files:
            raise ValueError(f"bundle: {location!r} is named twice")
        files[location] = entry["sha256"]
    manifest = {"model": model["name"], "files": files}
    key = _manifest_key(manifest)
    folder = board_cache() / BUNDLES / key
    model_path = folder / model["name"]
    if folder.is_dir():
        try:
            _check_bundle(folder)
            return {"status": "ok", "path": str(model_path)}
        except (OSError, ValueError):
            shutil.rmtree(folder)  # damaged: linked anew below
    folder.parent.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".incoming-"))
    try:
        for location, sha256 in files.items():
            source = _cached_path(sha256, PurePosixPath(location).name)
            if not (source.is_file() and file_sha256(source) == sha256):
                raise ValueError(f"bundle: {location} ({sha256}) is not in this board's cache; put it first")
            destination = incoming / location
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, destination)
            except OSError:
                shutil.copyfile(source, destination)
        (incoming / MANIFEST).write_text(json.dumps(manifest, sort_keys=True))
        try:
            os.replace(incoming, folder)
        except OSError:
            if not folder.is_dir():
                raise
            _check_bundle(folder)  # another run linked the same bundle meanwhile
            shutil.rmtree(incoming)
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    return {"status": "ok", "path": str(model_path)}


def _bundle_location(text: str) -> str:
    """A location inside a bundle: relative, no `..`, not the manifest."""
    location = PurePosixPath(text)
    if not text or location.is_absolute() or ".." in location.parts or "\\" in text or str(location) == MANIFEST:
        raise ValueError(f"bundle: not a location inside the model's folder: {text!r}")
    return str(location)


def _manifest_key(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def _check_bundle(folder: Path) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    if _manifest_key(manifest) != folder.name:
        raise ValueError(f"{folder / MANIFEST}: does not hash to {folder.name} (changed on disk)")
    for location, sha256 in manifest["files"].items():
        if file_sha256(folder / _bundle_location(location)) != sha256:
            raise ValueError(
                f"{folder / location}: the cached file no longer hashes to {sha256} (changed on disk since it was "
                "copied); delete that folder and run again to copy it anew"
            )


def check_cached_artifact(path_text: str) -> None:
    """An artifact from this machine's cache must still hash to the sha256 it is filed under (checked
    before every measurement, not only on arrival: a cache on a shared or flaky disk can change); a
    model in a bundle, with every external data file beside it."""
    path = Path(path_text)
    try:
        parent = path.parent.parent.resolve()
        cache = board_cache().resolve()
    except OSError:
        return
    if parent == cache / BUNDLES and path.is_file():
        _check_bundle(path.parent)
    elif parent == cache and path.is_file() and file_sha256(path) != path.parent.name:
        raise ValueError(
            f"{path}: the cached artifact no longer hashes to {path.parent.name} (changed on disk since it was "
            "copied); delete that folder and run again to copy it anew"
        )


def cell(request: dict[str, Any], replies: IO[str]) -> None:
    """Measure one cell under its memory cap and answer its result, as a local one-shot worker."""
    from targets.runners.base import WorkerRequest
    from targets.runners.worker import measure_cell_capped

    check_cached_artifact(request["artifact_path"])
    measure_cell_capped(WorkerRequest.from_dict(request), lambda result: _answer(replies, result))


def outputs(header: dict[str, Any], feeds_npz: bytes) -> bytes:
    import numpy as np

    from targets.backends import load_runner_class
    from targets.inputs import fed_only

    archive = np.load(io.BytesIO(feeds_npz), allow_pickle=False)
    feeds: dict[int, dict[str, np.ndarray]] = {}
    for key in archive.files:
        _, index, name = key.split("_", 2)
        feeds.setdefault(int(index), {})[name] = archive[key]
    runner = load_runner_class(header["backend"])(header["artifact_path"], int(header["threads"]), header["options"])
    with runner:
        taken = {meta.name for meta in runner.get_input_metadata()}  # a candidate may lack a constant input
        results = [runner.outputs_as_numpy(runner.infer(fed_only(feeds[index], taken))) for index in sorted(feeds)]
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {
        f"out_{feed}_{output}": value for feed, values in enumerate(results) for output, value in enumerate(values)
    }
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _answer(replies: IO[str], message: dict[str, Any]) -> None:
    replies.write(json.dumps(message) + "\n")
    replies.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    binary_replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    stdin = sys.stdin.buffer
    try:
        command = args[0] if args else ""
        if command == "hello" and len(args) == 1:
            _answer(replies, hello(json.loads(stdin.read() or b"{}")))
        elif command == "has" and len(args) == 3:
            _answer(replies, has(args[1], args[2]))
        elif command == "put" and len(args) == 3:
            _answer(replies, put(args[1], args[2], stdin))
        elif command == "bundle" and len(args) == 1:
            _answer(replies, bundle(json.loads(stdin.read())))
        elif command == "cell" and len(args) == 1:
            cell(json.loads(stdin.read()), replies)
        elif command == "live" and len(args) == 1:
            from targets.runners.base import WorkerRequest
            from targets.runners.worker import serve_bursts

            request = WorkerRequest.from_dict(json.loads(stdin.readline()))
            check_cached_artifact(request.artifact_path)
            serve_bursts(request, io.TextIOWrapper(stdin), replies)
        elif command == "outputs" and len(args) == 1:
            header = json.loads(stdin.readline())
            check_cached_artifact(header["artifact_path"])
            binary_replies.write(outputs(header, stdin.read()))
            binary_replies.flush()
        else:
            print(USAGE, file=sys.stderr)
            return 2
    except Exception as error:  # one JSON line the caller turns into a failed step
        from targets.runners.worker import failure_result

        traceback.print_exc(file=sys.stderr)
        _answer(replies, failure_result(error))
        return 1
    return 0


if __name__ == "__main__":
    exit_quickly(main())  # each step's caller waits for the exit: no interpreter teardown
