"""A torch.export program (`.pt2`) from elsewhere is loaded like user code: in a contained process
first (time limit, memory cap, failures as messages), and everywhere with torch's weights-only
unpickler, so a pickle payload inside the archive never runs — not in the CLI, not in a worker —
and a run over such a file ends with exit 2 and a message, leaving nothing behind."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.faults.conftest import FAST_BENCH, no_traceback

torch = pytest.importorskip("torch")


class _Payload:
    """Pickles as a call of `exec(code)`: what a hostile archive hides in a tensor file."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


@pytest.fixture(scope="module")
def good_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("programs") / "linear.pt2"
    module = torch.nn.Linear(4, 2).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(module, (torch.randn(2, 4),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


def _with_payload(program: Path, destination: Path, code: str, member_suffix: str) -> Path:
    """`program` with one tensor file of the archive replaced by a torch.save'd payload; a weight
    file is also marked as pickled in its config, the way tensor subclasses are stored."""
    payload = io.BytesIO()
    torch.save(_Payload(code), payload)
    with zipfile.ZipFile(program) as source, zipfile.ZipFile(destination, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.endswith(member_suffix):
                data = payload.getvalue()
            if member_suffix.startswith("weights/weight_") and item.filename.endswith("model_weights_config.json"):
                data = data.replace(
                    b'"path_name": "weight_0", "is_param": true, "use_pickle": false',
                    b'"path_name": "weight_0", "is_param": true, "use_pickle": true',
                    1,
                )
            target.writestr(item, data)
    return destination


@pytest.mark.parametrize("member", ["sample_inputs/model.pt", "weights/weight_0"])
@pytest.mark.parametrize("payload", ["marker", "segfault"])
def test_a_pickle_payload_in_a_program_never_runs(sandbox, good_program, member, payload):
    marker = sandbox.root / "PAYLOAD-RAN"
    code = {
        "marker": f"open({str(marker)!r}, 'a').write('ran\\n')",
        "segfault": "import ctypes; ctypes.string_at(0)",
    }[payload]
    hostile = _with_payload(good_program, sandbox.root / "hostile.pt2", code, member)
    for backend in ("onnxruntime", "torch"):
        completed = sandbox.run("bench", str(hostile), *FAST_BENCH, "--backend", backend, "--out", str(sandbox.out))
        assert completed.returncode == 2, completed.stdout + completed.stderr
        assert "holds pickled Python objects that are not plain tensors" in completed.stderr, completed.stderr
        assert "Unsupported global" in completed.stderr and no_traceback(completed.stderr)
        assert not marker.exists() and not sandbox.records()


def test_a_program_is_loaded_under_the_source_memory_cap(sandbox, good_program):
    """The first load happens in the contained process: a cap too small for torch stops it there,
    with a message, instead of in the CLI."""
    completed = sandbox.run(
        "bench", str(good_program), *FAST_BENCH, "--out", str(sandbox.out), SPEEDPROOF_SOURCE_MEMORY_MB="64"
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert f"model {str(good_program)!r}:" in completed.stderr
    assert no_traceback(completed.stderr.split("its last output:")[0]) and not sandbox.records()


def test_a_plain_program_still_measures_on_both_backends(sandbox, good_program):
    for backend in ("onnxruntime", "torch"):
        completed = sandbox.run(
            "bench", str(good_program), *FAST_BENCH, "--backend", backend, "--out", str(sandbox.out)
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
    assert len(sandbox.records()) == 2
