"""Data arrays on disk as speedproof reads them: .npz files read without unpickling, each array's
header checked before any is loaded; shared by `--data FILE.npz` and the data functions' results."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from targets.errors import InputError, SpeedproofError
from targets.files_in import checked_input
from targets.inputs import max_feed_bytes

LABELS_KEY = "labels"
# dtype kinds speedproof reads: booleans, integers, floats, complex numbers, strings
DATA_KINDS = "biufcUS"
# a data function is read up to this many samples (the data is held in memory)
MAX_FUNCTION_SAMPLES = 10_000


def _element_count(shape: tuple[int, ...], name: str, where: str) -> int:
    """The number of values an array header declares, from its dims as Python integers (no
    overflow); a negative dim is a damaged header, a zero dim an array without samples."""
    if any(not isinstance(dim, int) or dim < 0 for dim in shape):
        raise InputError(f"{where}: array {name!r} declares the shape {shape}: a damaged file (a dim below 0)")
    count = 1
    for dim in shape:
        count *= dim
    if count == 0:
        raise InputError(
            f"{where}: array {name!r} declares the shape {shape}, which holds no values; every array needs samples "
            "of a size above 0"
        )
    return count


def read_npz(path: Path, where: str) -> dict[str, np.ndarray]:
    """Every array of an .npz file, read without unpickling; each header is read first, so an object
    array or data larger than the feed cap is refused before any array is loaded."""
    limit = max_feed_bytes()
    checked_input(path, f"{where}: data")
    try:
        with zipfile.ZipFile(path) as archive:
            total = 0
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(member)
                if dtype.hasobject:
                    raise InputError(
                        f"{where}: array {name!r} holds Python objects (dtype {dtype}), which speedproof does not "
                        "unpickle; save plain numeric arrays (numpy.savez with numbers, not lists of arrays)"
                    )
                if dtype.kind not in DATA_KINDS:
                    raise InputError(
                        f"{where}: array {name!r} has dtype {dtype}; speedproof feeds models numbers, booleans and "
                        "strings (convert dates and records to numbers first)"
                    )
                count = _element_count(shape, name, where)
                total += count * dtype.itemsize
                if total > limit:
                    break
            if total > limit:
                raise InputError(
                    f"{where}: the arrays take {total / 2**20:.0f} MiB, more than the {limit / 2**20:.0f} MiB "
                    "allowed (a quarter of this host's memory, or $SPEEDPROOF_MAX_INPUT_MB); use fewer samples"
                )
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except SpeedproofError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
        raise InputError(
            f"{where}: not a readable .npz file ({type(error).__name__}: {error}); make it with "
            "numpy.savez(path, input_name=array, ...)"
        ) from None
