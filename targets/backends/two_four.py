"""The 2:4 weight pattern (at least 2 zeros in every 4 consecutive weights along the reduction axis),
as the `semi-structured` recipe leaves it: the one test of it that the torch and TensorRT backends share."""

from __future__ import annotations

import numpy as np

GROUP, ZEROS = 4, 2  # 2:4: at least 2 zeros in every 4 consecutive input weights


def zeros_have_two_four_pattern(zeros: np.ndarray, axis: int) -> bool:
    """Whether a weight's zero mask has at least 2 zeros in every 4 consecutive entries along `axis`
    (its reduction axis: input channels, a GEMM's K). Shared by the torch and TensorRT backends."""
    if zeros.ndim < 2 or zeros.shape[axis] % GROUP or zeros.size == 0:
        return False
    groups = np.moveaxis(zeros, axis, -1).reshape(-1, GROUP)
    return bool((groups.sum(axis=1) >= ZEROS).all())
