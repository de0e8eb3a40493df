"""Test doubles for the serving unit tests (a registry in memory, no MLflow)."""

from __future__ import annotations

from personas.errors import InvalidModel, ServiceUnavailable
from personas.model import CentroidModel
from personas.settings import Settings


class FakeRegistry:
    """Versions in memory; ``down`` makes every call fail like an unreachable MLflow."""

    def __init__(self) -> None:
        self.versions: dict[int, CentroidModel | Exception] = {}
        self.champion: int | None = None
        self.down = False
        self.loads: list[int] = []

    def champion_version(self, settings: Settings) -> int | None:
        if self.down:
            raise ServiceUnavailable("MLflow", "http://fake", "connection refused")
        return self.champion

    def load_version(self, settings: Settings, version: int) -> CentroidModel:
        if self.down:
            raise ServiceUnavailable("MLflow", "http://fake", "connection refused")
        self.loads.append(version)
        found = self.versions.get(version)
        if found is None:
            raise InvalidModel(f"version {version} has no persona_model.json")
        if isinstance(found, Exception):
            raise found
        return CentroidModel.from_dict(found.to_dict(), version=version)


def shifted(model: CentroidModel, by: float) -> CentroidModel:
    """The vendor model with every centroid moved by ``by`` (labels differ near boundaries)."""
    return CentroidModel.from_dict(model.to_dict() | {"centroids": (model.centroids + by).tolist()})
