"""Can this host run a target profile? Every reason it cannot, in words a user can act on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from targets.backends import load_runner_class
from targets.errors import SpeedproofError, UsageError
from targets.host.fingerprint import HostFingerprint
from targets.profiles import (
    BackendSpec,
    ResolvedProfile,
    TargetProfile,
    load_target,
    resolve_profile,
    with_backend,
)

if TYPE_CHECKING:
    from targets.runners.base import Runner

GIB = 1024**3


def local_backend_reason(backend: BackendSpec) -> str | None:
    """Why this process's host cannot run `backend` with its options; None when it can."""
    try:
        return load_runner_class(backend.name).unavailable_reason(backend.options)
    except Exception as error:  # a runtime that fails to import is a reason, not a crash
        return str(error)


def reasons_host_cannot_run(
    profile: TargetProfile,
    host: HostFingerprint,
    backend_reasons: Callable[[Sequence[BackendSpec]], list[str | None]] | None = None,
) -> list[str]:
    """Empty when the host can run the profile; otherwise one sentence per unmet requirement.
    `backend_reasons` asks the machine that would run the backends (default: this process's host)."""
    reasons: list[str] = []
    requires = profile.requires
    if host.isa != requires.isa:
        reasons.append(f"host is {host.isa}, profile needs {requires.isa}")
    if requires.cuda_device and not host.gpus:
        reasons.append("no CUDA device (nvidia-smi found no NVIDIA GPU)")
    missing_flags = [flag for flag in requires.cpu_flags if flag not in host.cpu_flags]
    if missing_flags and host.isa == requires.isa:
        reasons.append(f"CPU lacks {', '.join(missing_flags)}")
    if profile.resources.memory_bytes and host.memory_bytes < profile.resources.memory_bytes:
        reasons.append(
            f"host has {host.memory_bytes / GIB:.1f} GiB of memory, profile caps at "
            f"{profile.resources.memory_bytes / GIB:.1f} GiB"
        )
    if host.isa == requires.isa:
        ask = backend_reasons or (lambda backends: [local_backend_reason(backend) for backend in backends])
        for backend, reason in zip(profile.backends, ask(profile.backends), strict=True):
            if reason:
                reasons.append(f"backend {backend.name}: {reason}")
    return reasons


def default_target_name(host: HostFingerprint, can_run: Callable[[TargetProfile], list[str]] | None = None) -> str:
    """The built-in profile that suits this host: cuda-gpu with a usable GPU, else the CPU profile of
    its ISA. `can_run` answers where the measurements run (default: this process's host)."""
    reasons = can_run or (lambda profile: reasons_host_cannot_run(profile, host))
    if host.gpus and not reasons(with_backend(load_target("cuda-gpu"), None)):
        return "cuda-gpu"
    return "arm-edge" if host.isa == "aarch64" else "x86-cpu"


def resolve_target(
    target: str | None, threads: int | None, runner: Runner, backend: str | None = None
) -> ResolvedProfile:
    """Load `target` (None: the built-in profile that suits the runner's machine) narrowed to one
    backend (`backend`, else the profile's first), check that machine can run it, and resolve its
    threads and cores there; a machine that cannot run it is an error with the reasons."""
    host = runner.fingerprint()
    profile = with_backend(load_target(target or default_target_name(host, runner.can_run)), backend)
    reasons = runner.can_run(profile)
    if reasons:
        raise SpeedproofError(f"this host cannot run target {profile.name}: {'; '.join(reasons)}")
    return resolve_profile(profile, host, threads, runner.available_cpus())


def require_one_backend(resolved: ResolvedProfile, command: str) -> None:
    """Refuse several backends (`--backend onnxruntime,openvino`) for a command that measures on one."""
    names = [backend.name for backend in resolved.profile.backends]
    if len(names) > 1:
        raise UsageError(
            f"--backend {','.join(names)}: speedproof {command} measures on one backend; run it once per backend "
            "(verify, gate and compare judge each variant on several)"
        )
