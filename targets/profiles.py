"""Target profiles: TOML data describing a deployment target, loaded and strictly validated.

A profile is data. Resolving "physical" threads or "all" cores against a host happens in
`resolve_profile`, a separate step that needs a host fingerprint. The `[policy]` table is kept as
data: harness validates it when it builds the verification policy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from targets.backends import BackendOption, backend_entry
from targets.errors import ConfigurationError, SpeedproofError, did_you_mean, unknown_choice
from targets.host.cpu_conditions import fastest_cpus_here
from targets.host.fingerprint import HostFingerprint, normalize_isa
from targets.toml_files import read_toml_file

PROFILES_DIR = Path(__file__).parent / "profiles"
BYTES_PER_GB = 1024**3
KNOWN_ISAS = ("x86_64", "aarch64")
# the largest count a backend option takes (streams, a batch size): past it, a typo rather than a setting
MAX_BACKEND_COUNT = 1 << 16

TOP_LEVEL_HELP = {
    "name": "profile name, e.g. x86-cpu",
    "description": "one line saying what the target is",
    "isa": "instruction set the target runs: x86_64 or aarch64",
    "batch_sizes": "batch sizes measured when --batch is not given, e.g. [1, 8]",
    "threads": 'intra-op threads: an integer, or "physical" for all physical cores of the host',
    "resources": 'table: cores (integer or "all") and memory_gb (0 = no cap)',
    "requires": "table: isa, cuda_device (bool), cpu_flags (list) the host must have",
    "backends": "array of tables: name plus the backend's options",
    "policy": "table: the verification policy's defaults on this target (keys as in a --policy file)",
    "remote": 'where the target is measured: "ssh://[user@]host[:port][?python=PATH]" or "qemu-aarch64:FOLDER" '
    "(as --remote, which wins)",
}
RESOURCES_HELP = {
    "cores": 'logical CPUs the worker is pinned to: an integer, or "all"',
    "memory_gb": "the worker's resident memory may not pass this many GiB (MEMORY_EXCEEDED); 0 = no cap",
}
REQUIRES_HELP = {
    "isa": "instruction set the host must have: x86_64 or aarch64",
    "cuda_device": "whether the host must have an NVIDIA CUDA device",
    "cpu_flags": 'CPU flags the host must have, e.g. ["avx2"]',
}


@dataclass(frozen=True)
class BackendSpec:
    """A backend the profile runs, with the options it sets for it."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HostRequirements:
    isa: str
    cuda_device: bool = False
    cpu_flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResourceCaps:
    cores: int | None = None  # None: all logical CPUs
    memory_bytes: int | None = None  # None: no cap


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    isa: str
    batch_sizes: tuple[int, ...]
    threads: int | None  # None: all physical cores of the host
    resources: ResourceCaps
    requires: HostRequirements
    backends: tuple[BackendSpec, ...]
    source: str  # file the profile came from
    policy: dict[str, Any] = field(default_factory=dict)  # verification policy defaults on this target
    remote: str | None = None  # ssh://... : the machine this target is measured on (targets.runners.ssh)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["batch_sizes"] = list(self.batch_sizes)
        data["requires"]["cpu_flags"] = list(self.requires.cpu_flags)
        data["backends"] = [asdict(backend) for backend in self.backends]
        return data


@dataclass(frozen=True)
class ResolvedProfile:
    """A profile made concrete for one host: thread count and the CPUs to pin to."""

    profile: TargetProfile
    threads: int
    cpu_affinity: tuple[int, ...]
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = self.profile.as_dict()
        data["resolved"] = {
            "threads": self.threads,
            "cpu_affinity": list(self.cpu_affinity),
            "notes": list(self.notes),
        }
        return data


def with_backend(profile: TargetProfile, backend: str | None) -> TargetProfile:
    """The profile narrowed to the backends a run uses: `backend` by name, or (None) the first the
    profile lists; the others are there to be chosen with --backend. `NAME:key=value:...` also
    overrides options of that backend, e.g. `torch:mode=compile`; a comma-separated list
    (`onnxruntime,openvino`) keeps several, in that order: each variant is then judged on each."""
    if backend is None:
        return replace(profile, backends=profile.backends[:1])
    chosen = parse_backend_list(backend, profile)
    return replace(profile, backends=tuple(_chosen_backend(profile, *item) for item in chosen))


def parse_backend_list(text: str, profile: TargetProfile | None = None) -> list[tuple[str, dict[str, Any]]]:
    """`NAME[:key=value...][,NAME...]` as (name, option overrides) pairs, each name named once and each
    option checked like a profile's. Each name is one `profile` lists (None: any registered backend, for a
    target known only later)."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ConfigurationError(f"--backend {text!r}: an empty name between commas; e.g. onnxruntime,openvino")
    names = [item.partition(":")[0] for item in items]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigurationError(
            f"--backend {text!r} names {', '.join(repeated)} more than once; each backend is measured once per "
            "run (run again for other options of the same backend)"
        )
    parsed = []
    for item in items:
        name, _, option_text = item.partition(":")
        if profile is not None:
            _profile_backend(profile, name)
        else:
            backend_entry(name)  # an unknown name is an error listing the known ones
        parsed.append((name, backend_option_overrides(name, option_text) if option_text else {}))
    return parsed


def _profile_backend(profile: TargetProfile, name: str) -> BackendSpec:
    chosen = [spec for spec in profile.backends if spec.name == name]
    if not chosen:
        listed = ", ".join(spec.name for spec in profile.backends)
        raise ConfigurationError(
            f"target {profile.name} ({profile.source}) has no backend {name!r}; it lists: {listed}"
        )
    return chosen[0]


def _chosen_backend(profile: TargetProfile, name: str, overrides: dict[str, Any]) -> BackendSpec:
    spec = _profile_backend(profile, name)
    return BackendSpec(name, {**spec.options, **overrides}) if overrides else spec


def backend_option_overrides(name: str, text: str) -> dict[str, Any]:
    """Parse `key=value:key=value` into options of backend `name`, each checked like a profile's."""
    entry = backend_entry(name)
    options: dict[str, Any] = {}
    for item in text.split(":"):
        key, equals, value = item.partition("=")
        if not equals or not key or not value:
            raise ConfigurationError(
                f"--backend {name}:{text}: expected key=value items separated by ':', got {item!r}"
            )
        option = entry.options.get(key)
        if option is None:
            raise ConfigurationError(
                f"--backend {name}: unknown option {key!r}{did_you_mean(key, entry.options)}; "
                f"valid: {', '.join(entry.options)}"
            )
        try:
            options[key] = checked_option_value(option, value)
        except ValueError as error:
            raise ConfigurationError(f"--backend {name}: {key}={value!r}; {error}") from None
    return options


def checked_option_value(option: BackendOption, value: Any) -> Any:
    """A backend option's value as its type (a command line's text converted), or ValueError saying what
    is valid: one of its choices, or for a count a whole number from 1 to MAX_BACKEND_COUNT."""
    if option.type is int:
        if isinstance(value, str):
            try:
                value = int(value, 10)
            except ValueError:
                raise ValueError(f"expected a whole number from 1 to {MAX_BACKEND_COUNT}") from None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BACKEND_COUNT:
            raise ValueError(f"expected a whole number from 1 to {MAX_BACKEND_COUNT}")
    if option.choices and value not in option.choices:
        raise ValueError(f"valid: {', '.join(option.choices)}")
    return value


def builtin_profile_names() -> list[str]:
    return sorted(path.stem for path in PROFILES_DIR.glob("*.toml"))


def _check_keys(table: dict[str, Any], allowed: dict[str, str], where: str, path: Path) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigurationError(
                f"{path}: unknown key {key!r} in {where}{did_you_mean(key, allowed)}; valid keys: {', '.join(allowed)}"
            )


def _require(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, path: Path) -> Any:
    if key not in table:
        raise ConfigurationError(f"{path}: missing key {key!r} in {where}")
    value = table[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ConfigurationError(f"{path}: {where}.{key} = {value!r} has the wrong type; expected {_type_name(kind)}")
    return value


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _parse_isa(value: str, where: str, path: Path) -> str:
    isa = normalize_isa(value)
    if isa not in KNOWN_ISAS:
        raise ConfigurationError(f"{path}: {where} = {value!r}; valid: {', '.join(KNOWN_ISAS)}")
    return isa


def _parse_backend(table: Any, index: int, path: Path) -> BackendSpec:
    where = f"backends[{index}]"
    if not isinstance(table, dict):
        raise ConfigurationError(f"{path}: {where} must be a table with a name")
    name = _require(table, "name", str, where, path)
    try:
        entry = backend_entry(name)
    except SpeedproofError as error:
        raise ConfigurationError(f"{path}: {where}.name: {error}") from None
    allowed = {"name": "backend name", **{key: opt.help for key, opt in entry.options.items()}}
    _check_keys(table, allowed, where, path)
    options: dict[str, Any] = {}
    for key, option in entry.options.items():
        if key not in table:
            continue
        value = _require(table, key, option.type, where, path)
        try:
            options[key] = checked_option_value(option, value)
        except ValueError as error:
            raise ConfigurationError(f"{path}: {where}.{key} = {value!r}; {error}") from None
    return BackendSpec(name=name, options=options)


def _table(data: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    """The [key] table of the profile ({} when absent); anything else is an error naming it."""
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise ConfigurationError(f"{path}: [{key}] must be a table ({TOP_LEVEL_HELP[key]}), got {table!r}")
    return table


def _positive_int_or_word(value: Any, word: str, where: str, path: Path) -> int | None:
    """A positive integer, or None for `word` ("physical", "all": decided per host later)."""
    if value == word:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ConfigurationError(f'{path}: {where} = {value!r}; expected a positive integer or "{word}"')


def parse_profile(data: dict[str, Any], path: Path) -> TargetProfile:
    """Validate a profile's TOML data; every error names the file and the key."""
    _check_keys(data, TOP_LEVEL_HELP, "the top level", path)
    name = _require(data, "name", str, "profile", path)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigurationError(f"{path}: description = {description!r} has the wrong type; expected str")
    isa = _parse_isa(_require(data, "isa", str, "profile", path), "isa", path)

    batch_sizes = _require(data, "batch_sizes", list, "profile", path)
    if not batch_sizes or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in batch_sizes):
        raise ConfigurationError(f"{path}: batch_sizes = {batch_sizes!r}; expected a list of positive integers")

    threads = _positive_int_or_word(data.get("threads", "physical"), "physical", "threads", path)

    resources_table = _table(data, "resources", path)
    _check_keys(resources_table, RESOURCES_HELP, "[resources]", path)
    cores = _positive_int_or_word(resources_table.get("cores", "all"), "all", "resources.cores", path)
    memory_gb = resources_table.get("memory_gb", 0)
    if (
        not isinstance(memory_gb, (int, float))
        or isinstance(memory_gb, bool)
        or not math.isfinite(memory_gb)
        or memory_gb < 0
    ):
        raise ConfigurationError(
            f"{path}: resources.memory_gb = {memory_gb!r}; expected a finite number >= 0 (0 = no cap)"
        )

    requires_table = _table(data, "requires", path)
    _check_keys(requires_table, REQUIRES_HELP, "[requires]", path)
    cuda_device = requires_table.get("cuda_device", False)
    if not isinstance(cuda_device, bool):
        raise ConfigurationError(f"{path}: requires.cuda_device = {cuda_device!r}; expected true or false")
    cpu_flags = requires_table.get("cpu_flags", [])
    if not isinstance(cpu_flags, list) or not all(isinstance(flag, str) for flag in cpu_flags):
        raise ConfigurationError(
            f'{path}: requires.cpu_flags = {cpu_flags!r}; expected a list of strings like ["avx2"]'
        )
    required_isa = requires_table.get("isa", isa)
    if not isinstance(required_isa, str):
        raise ConfigurationError(f"{path}: requires.isa = {required_isa!r}; valid: {', '.join(KNOWN_ISAS)}")
    requires = HostRequirements(
        isa=_parse_isa(required_isa, "requires.isa", path), cuda_device=cuda_device, cpu_flags=tuple(cpu_flags)
    )

    backends_list = _require(data, "backends", list, "profile", path)
    if not backends_list:
        raise ConfigurationError(f"{path}: backends is empty; a profile needs at least one [[backends]] table")
    backends = tuple(_parse_backend(table, index, path) for index, table in enumerate(backends_list))
    policy = data.get("policy", {})
    if not isinstance(policy, dict):
        raise ConfigurationError(f"{path}: [policy] must be a table of policy keys, got {type(policy).__name__}")
    remote = data.get("remote")
    if remote is not None and (not isinstance(remote, str) or not remote.startswith(("ssh://", "qemu-aarch64:"))):
        raise ConfigurationError(f"{path}: remote = {remote!r}; expected {TOP_LEVEL_HELP['remote']}")
    if remote is not None and remote.startswith("ssh://"):
        from targets.ssh_address import SshAddress

        try:
            SshAddress.parse(remote)
        except SpeedproofError as error:
            raise ConfigurationError(f"{path}: remote: {error}") from None

    return TargetProfile(
        name=name,
        description=description,
        isa=isa,
        batch_sizes=tuple(batch_sizes),
        threads=threads,
        resources=ResourceCaps(cores=cores, memory_bytes=int(memory_gb * BYTES_PER_GB) or None),
        requires=requires,
        backends=backends,
        source=str(path),
        policy=policy,
        remote=remote,
    )


def load_profile_file(path: Path) -> TargetProfile:
    data = read_toml_file(path, "target profile")
    return parse_profile(data, path)


def load_target(name_or_path: str) -> TargetProfile:
    """A built-in profile by name, or a user's profile by path (anything ending in .toml)."""
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        return load_profile_file(Path(name_or_path))
    if name_or_path not in builtin_profile_names():
        raise unknown_choice("target", name_or_path, builtin_profile_names())
    return load_profile_file(PROFILES_DIR / f"{name_or_path}.toml")


def load_all_builtin_profiles() -> list[TargetProfile]:
    return [load_target(name) for name in builtin_profile_names()]


# more threads than this per CPU a worker may use is refused: far past any useful oversubscription
MAX_THREADS_PER_CPU = 4


def resolve_profile(
    profile: TargetProfile,
    host: HostFingerprint,
    threads_override: int | None = None,
    usable_cpus: Iterable[int] | None = None,
) -> ResolvedProfile:
    """Turn the profile's "physical"/"all" into numbers for `host`, noting any shortfall.
    `usable_cpus`: the CPUs a worker may use there, fastest first (default: this process's); a
    profile that pins N cores gets the first N."""
    notes: list[str] = []
    available_cpus = fastest_cpus_here() if usable_cpus is None else list(usable_cpus)
    if profile.resources.cores is None:
        affinity = tuple(available_cpus)
    else:
        if profile.resources.cores > len(available_cpus):
            notes.append(f"profile asks for {profile.resources.cores} cores, this host offers {len(available_cpus)}")
        affinity = tuple(available_cpus[: profile.resources.cores])
    if threads_override is not None:
        threads = threads_override
    elif profile.threads is None:
        threads = min(host.physical_cores, len(affinity))
    else:
        threads = profile.threads
    if threads > MAX_THREADS_PER_CPU * len(affinity):
        # ONNX Runtime and torch start every one of them: 100000 threads hang a host instead of measuring
        where = "--threads" if threads_override is not None else f"{profile.source}: threads"
        raise ConfigurationError(
            f"{where} = {threads} is far more than the {len(affinity)} CPUs the worker runs on here; at most "
            f"{MAX_THREADS_PER_CPU * len(affinity)} ({MAX_THREADS_PER_CPU} per CPU) are measured. Pass --threads N "
            'or use threads = "physical"'
        )
    if threads > len(affinity):
        notes.append(f"{threads} threads on {len(affinity)} pinned CPUs oversubscribes them")
    return ResolvedProfile(profile=profile, threads=threads, cpu_affinity=affinity, notes=tuple(notes))
