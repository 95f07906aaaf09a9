"""The typed run record: the header every record starts with (schema, provenance, host, target)
and the sections a command fills (policy, protocol, model source, variants, cells, gate, compare),
serialised to the record's JSON by `as_dict`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from harness.records.cells import BenchCell, VerdictCell
from harness.records.provenance import git_commit, utc_now_iso

if TYPE_CHECKING:
    from targets.host.fingerprint import HostFingerprint
    from targets.profiles import ResolvedProfile

Record = dict[str, Any]
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class RecordHeader:
    run_id: str
    created_at: str
    tool_version: str
    git_commit: str | None
    git_dirty: bool | None
    command: str
    host: dict[str, Any]
    target: dict[str, Any] | None  # None for a record that spans several targets: its cells name theirs
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def new(cls, command: str, host: HostFingerprint, resolved: ResolvedProfile | None, run_id: str) -> RecordHeader:
        """The header of a run that starts now, in the current folder's checkout."""
        from harness.version import __version__

        commit, dirty = git_commit()
        return cls(
            run_id=run_id,
            created_at=utc_now_iso(),
            tool_version=__version__,
            git_commit=commit,
            git_dirty=dirty,
            command=command,
            host=host.as_dict(),
            target=resolved.as_dict() if resolved is not None else None,
        )

    def as_dict(self) -> Record:
        return {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "tool_version": self.tool_version,
            "git_commit": self.git_commit,
            "git_dirty": self.git_dirty,
            "command": self.command,
            "host": self.host,
            "target": self.target,
        }


@dataclass(frozen=True)
class RunRecord:
    """One run. Sections a command does not produce stay None and are left out of the JSON."""

    header: RecordHeader
    policy: dict[str, Any] | None = None
    policies: dict[str, dict[str, Any]] | None = None  # gate: the policy of each check on each target
    protocol: dict[str, Any] | None = None
    model_source: dict[str, Any] | None = None
    artifact_dir: str | None = None
    variants: list[dict[str, Any]] | None = None
    cells: tuple[BenchCell | VerdictCell, ...] | None = None
    sections: dict[str, Any] = field(default_factory=dict)  # a command's own: "gate", "compare"

    def with_section(self, name: str, content: Any) -> RunRecord:
        return replace(self, sections={**self.sections, name: content})

    def as_dict(self) -> Record:
        data = self.header.as_dict()
        for name in ("policy", "policies", "protocol", "model_source", "artifact_dir", "variants"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.cells is not None:
            data["cells"] = [cell.as_dict() for cell in self.cells]
        data.update(self.sections)
        return data
