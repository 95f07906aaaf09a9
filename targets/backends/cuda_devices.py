"""What the CUDA backends (torch and TensorRT) ask torch about the device they run on: its UUID (NVML
finds the same card by it) and the peaks of torch's caching allocator."""

from __future__ import annotations


def current_cuda_device_uuid() -> str | None:
    """UUID of torch's current CUDA device (NVML finds the same card by it), where torch says."""
    import torch

    uuid = getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "uuid", None)
    return None if uuid is None else str(uuid)


def torch_device_peaks() -> dict[str, int]:
    """Peaks of torch's CUDA caching allocator (the tensors a CUDA backend allocates through torch)."""
    import torch

    return {
        "device_peak_allocated_bytes": int(torch.cuda.max_memory_allocated()),
        "device_peak_reserved_bytes": int(torch.cuda.max_memory_reserved()),
    }
