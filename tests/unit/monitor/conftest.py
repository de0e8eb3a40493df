"""Seeded synthetic windows for the monitor's unit tests (numpy only, no producer dependency)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from monitor.stats import Reference
from personas.model import CentroidModel
from personas.synthetic import draw_window

Draw = Callable[..., np.ndarray]


@pytest.fixture
def draw(vendor_model: CentroidModel) -> Draw:
    def make(rng: np.random.Generator, n: int, **kwargs: Any) -> np.ndarray:
        return draw_window(rng, vendor_model.centroids, n, **kwargs)

    return make


@pytest.fixture
def january(vendor_model: CentroidModel, draw: Draw) -> Reference:
    """A 500-row std-2 reference month, judged with the vendor centroids as champion (v1)."""
    champion = CentroidModel(
        vendor_model.centroids, vendor_model.persona_ids, vendor_model.persona_names, version=1
    )
    return Reference.build(champion, draw(np.random.default_rng(2025), 500))
