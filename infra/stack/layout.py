"""Where the stack keeps its files, derived from settings (all under ignored folders)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from personas.settings import Settings

__all__ = ["SKIPPED", "Layout", "ServiceStatus"]

#: How an optional service (Prometheus) that cannot be installed starts: the stack goes on.
SKIPPED = "skipped"


@dataclass(frozen=True)
class Layout:
    root: Path
    cache: Path

    @classmethod
    def from_settings(cls, settings: Settings, profile: str = "default") -> Layout:
        """The default stack's files live in the stack folder, another profile's in a subfolder
        of it named after the profile (``.stack/cluster``); the jar cache is shared."""
        root = settings.stack_dir.resolve()
        if profile != "default":
            root = root / profile
        return cls(root=root, cache=settings.cache_dir.resolve())

    def service_dir(self, service: str) -> Path:
        return self.root / service

    def pid_file(self, service: str) -> Path:
        return self.root / "run" / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.root / "logs" / f"{service}.log"


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    pid: int | None
    answers: bool
    detail: str = ""
    required: bool = True  # False: an optional service that is not installed (`--check` skips it)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "address": self.address,
            "pid": self.pid,
            "answers": self.answers,
            "detail": self.detail,
            "required": self.required,
        }
