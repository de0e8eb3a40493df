"""Nearest-centroid persona model: the one labelling rule, shared by stream, REST and trainer.

Labels a batch with the ``‖x‖² − 2·x·cᵀ + ‖c‖²`` form (one matrix product) because per-record Python
is ~100× slower (docs/facts.md "Labelling cost": ~17M records/s batched vs ~175k/s per record). The model travels as a
small JSON document (``to_dict``/``from_dict``) so any worker can load and validate it cheaply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from personas.catalogue import FEATURES, Catalogue
from personas.errors import InvalidModel

__all__ = ["BOOTSTRAP_VERSION", "DEFAULT_OUTLIER_DISTANCE", "CentroidModel", "Labels"]

#: Version number used for the vendor centroids when no registry model is available.
BOOTSTRAP_VERSION = 0
#: For the vendor data (isotropic std 2 in 10 dims) the squared distance / σ² follows χ²(10);
#: its 99.9th percentile is 29.59, so σ·√29.59 ≈ 10.9 flags about 1 in 1000 in-persona records.
DEFAULT_OUTLIER_DISTANCE = 2.0 * math.sqrt(29.588)


@dataclass(frozen=True)
class Labels:
    """Labels of a batch, one array entry per record (arrays, not objects, to stay vectorised)."""

    index: np.ndarray  # row of the nearest centroid
    persona_id: np.ndarray
    distance: np.ndarray
    margin: np.ndarray
    is_outlier: np.ndarray

    def __len__(self) -> int:
        return int(self.index.shape[0])


@dataclass(frozen=True)
class CentroidModel:
    """Centroids with persona identity, outlier threshold and the registry version that made them."""

    centroids: np.ndarray
    persona_ids: tuple[int, ...]
    persona_names: tuple[str, ...]
    outlier_distance: float = DEFAULT_OUTLIER_DISTANCE
    version: int = BOOTSTRAP_VERSION
    feature_names: tuple[str, ...] = FEATURES
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        centroids = np.ascontiguousarray(self.centroids, dtype=np.float64)
        object.__setattr__(self, "centroids", centroids)
        object.__setattr__(self, "_sq_norms", np.einsum("ij,ij->i", centroids, centroids))
        object.__setattr__(self, "_ids", np.asarray(self.persona_ids, dtype=np.int64))
        self.validate()

    @classmethod
    def from_catalogue(
        cls, catalogue: Catalogue, *, outlier_distance: float = DEFAULT_OUTLIER_DISTANCE
    ) -> CentroidModel:
        return cls(
            centroids=catalogue.centroids,
            persona_ids=catalogue.ids,
            persona_names=catalogue.names,
            outlier_distance=outlier_distance,
            version=BOOTSTRAP_VERSION,
            feature_names=catalogue.feature_names,
            metadata={"source": "vendor"},
        )

    def validate(self, known_persona_ids: set[int] | None = None) -> None:
        """Refuse anything that could label wrongly: shape, finiteness, identity, threshold."""
        c = self.centroids
        if c.ndim != 2 or c.shape[0] < 2:
            raise InvalidModel(f"centroids must be a (k≥2, d) matrix, got shape {c.shape}")
        if c.shape[1] != len(self.feature_names) or tuple(self.feature_names) != FEATURES:
            raise InvalidModel(
                f"model features {list(self.feature_names)} (d={c.shape[1]}) differ from {list(FEATURES)}"
            )
        if not np.isfinite(c).all():
            raise InvalidModel("centroids contain NaN or infinite values")
        if len(self.persona_ids) != c.shape[0] or len(self.persona_names) != c.shape[0]:
            raise InvalidModel("persona ids/names do not match the number of centroids")
        if len(set(self.persona_ids)) != len(self.persona_ids):
            raise InvalidModel(f"duplicate persona ids {list(self.persona_ids)}")
        if not (math.isfinite(self.outlier_distance) and self.outlier_distance > 0):
            raise InvalidModel(f"outlier distance must be positive, got {self.outlier_distance}")
        if known_persona_ids is not None:
            unknown = set(self.persona_ids) - known_persona_ids
            if unknown:
                raise InvalidModel(
                    f"unknown persona ids {sorted(unknown)} (approve them with `persona train accept`, "
                    "or set PERSONA_ALLOW_NEW_PERSONAS=true)"
                )

    @property
    def n_personas(self) -> int:
        return int(self.centroids.shape[0])

    def name_of(self, persona_id: int) -> str:
        return self.persona_names[self.persona_ids.index(persona_id)]

    def label(self, features: np.ndarray) -> Labels:
        """Label a (n, d) float batch; n may be 0. Assumes validated, finite input."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.shape[1] != self.centroids.shape[1]:
            raise ValueError(f"expected {self.centroids.shape[1]} features, got {x.shape[1]}")
        sq = np.einsum("ij,ij->i", x, x)[:, None] - 2.0 * (x @ self.centroids.T)
        sq += self._sq_norms  # type: ignore[attr-defined]
        np.maximum(sq, 0.0, out=sq)
        if self.n_personas == 2:
            order = np.argsort(sq, axis=1)
        else:
            order = np.argpartition(sq, 1, axis=1)[:, :2]
            swap = np.take_along_axis(sq, order, axis=1)
            flip = swap[:, 0] > swap[:, 1]
            order[flip] = order[flip][:, ::-1]
        rows = np.arange(x.shape[0])
        nearest = np.sqrt(sq[rows, order[:, 0]])
        second = np.sqrt(sq[rows, order[:, 1]])
        index = order[:, 0]
        return Labels(
            index=index,
            persona_id=self._ids[index],  # type: ignore[attr-defined]
            distance=nearest,
            margin=second - nearest,
            is_outlier=nearest > self.outlier_distance,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "persona-centroid-model/1",
            "version": self.version,
            "feature_names": list(self.feature_names),
            "persona_ids": list(self.persona_ids),
            "persona_names": list(self.persona_names),
            "centroids": self.centroids.tolist(),
            "outlier_distance": self.outlier_distance,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, version: int | None = None) -> CentroidModel:
        """Inverse of ``to_dict``; raises InvalidModel on anything malformed."""
        try:
            if data.get("format") != "persona-centroid-model/1":
                raise InvalidModel(f"unknown model format {data.get('format')!r}")
            return cls(
                centroids=np.array(data["centroids"], dtype=np.float64),
                persona_ids=tuple(int(i) for i in data["persona_ids"]),
                persona_names=tuple(str(n) for n in data["persona_names"]),
                outlier_distance=float(data["outlier_distance"]),
                version=int(data["version"] if version is None else version),
                feature_names=tuple(data["feature_names"]),
                metadata=dict(data.get("metadata", {})),
            )
        except InvalidModel:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidModel(f"malformed model document: {exc!r}") from None
