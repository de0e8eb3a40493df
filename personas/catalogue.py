"""The persona catalogue: the vendor's centroids, with ids and names, shipped inside the package."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FEATURES", "Catalogue", "Persona", "load_vendor_catalogue"]

#: Feature names in model order. Every event and every model uses exactly these.
FEATURES: tuple[str, ...] = tuple(f"x{i}" for i in range(1, 11))


@dataclass(frozen=True)
class Persona:
    id: int
    name: str
    tagline: str
    centroid: tuple[float, ...]


@dataclass(frozen=True)
class Catalogue:
    """Personas in id order plus how the original project generated its monthly data."""

    feature_names: tuple[str, ...]
    personas: tuple[Persona, ...]
    original_months: tuple[dict[str, Any], ...]

    @property
    def centroids(self) -> np.ndarray:
        return np.array([p.centroid for p in self.personas], dtype=np.float64)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(p.id for p in self.personas)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.personas)

    def by_id(self, persona_id: int) -> Persona:
        for persona in self.personas:
            if persona.id == persona_id:
                return persona
        raise KeyError(persona_id)


def _parse(raw: dict[str, Any]) -> Catalogue:
    personas = tuple(
        Persona(
            id=int(p["id"]),
            name=str(p["name"]),
            tagline=str(p.get("tagline", "")),
            centroid=tuple(float(v) for v in p["centroid"]),
        )
        for p in sorted(raw["personas"], key=lambda p: int(p["id"]))
    )
    features = tuple(raw["feature_names"])
    if features != FEATURES:
        raise ValueError(f"catalogue features {features} differ from {FEATURES}")
    for p in personas:
        if len(p.centroid) != len(features):
            raise ValueError(
                f"persona {p.id} has {len(p.centroid)} coordinates, not {len(features)}"
            )
    months = tuple(raw.get("original_monthly_data", {}).get("months", []))
    return Catalogue(feature_names=features, personas=personas, original_months=months)


def load_vendor_catalogue(path: Path | None = None) -> Catalogue:
    """Load the vendor personas: the packaged copy by default, or a JSON file of the same shape."""
    if path is None:
        text = resources.files("personas.data").joinpath("vendor_personas.json").read_text()
    else:
        text = path.read_text()
    return _parse(json.loads(text))
