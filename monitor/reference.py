"""The reference a window is judged against: the current champion and its own reference sample.

The registry is the source of truth: at every window close the champion version is looked up
(≈8 ms, docs/facts.md "MLflow 3.17") and, when it moved (a hot swap), the new model and its
``reference.parquet`` are loaded and labelled once. A version that cannot be loaded never replaces a working reference. Tests inject
a fixed reference with ``StaticReference``.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from monitor.stats import Reference
from personas.catalogue import FEATURES
from personas.errors import InvalidModel
from personas.settings import Settings

__all__ = ["ChampionReference", "ReferenceSource", "StaticReference"]

log = logging.getLogger(__name__)


class ReferenceSource(Protocol):
    def current(self) -> Reference | None:
        """The reference to judge the next window against (None: no champion yet)."""
        ...


class StaticReference:
    """A fixed reference (tests, or judging history against one chosen model)."""

    def __init__(self, reference: Reference) -> None:
        self._reference = reference

    def current(self) -> Reference:
        return self._reference


class ChampionReference:
    """Follows the registry's champion alias."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._reference: Reference | None = None
        self._failed_version: int | None = None

    def current(self) -> Reference | None:
        from personas import registry

        version = registry.champion_version(self.settings)
        if version is None:
            return self._reference
        if self._reference is not None and self._reference.version == version:
            return self._reference
        if version == self._failed_version:
            return self._reference
        try:
            model = registry.load_version(self.settings, version)
            frame = registry.load_reference(self.settings, version)
            missing = [c for c in FEATURES if c not in frame.columns]
            if missing:
                raise InvalidModel(f"version {version}: reference lacks columns {missing}")
            features = frame[list(FEATURES)].to_numpy(dtype=np.float64)
            reference = Reference.build(model, features)
        except (InvalidModel, ValueError) as exc:
            log.error(
                "champion version %s is unusable, keeping the previous reference: %s", version, exc
            )
            self._failed_version = version
            return self._reference
        previous = None if self._reference is None else self._reference.version
        log.info(
            "judging against champion version %s (%d reference rows; was %s)",
            version,
            features.shape[0],
            previous,
        )
        self._reference = reference
        return reference
