"""Seeded synthetic windows for the monitor's unit tests (numpy only, no producer dependency)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from monitor.stats import Reference
from personas.model import CentroidModel

Draw = Callable[..., np.ndarray]


def _draw(
    rng: np.random.Generator,
    centroids: np.ndarray,
    n: int,
    *,
    std: float = 2.0,
    shift: float = 0.0,
    new_share: float = 0.0,
    mix: tuple[float, ...] | None = None,
) -> np.ndarray:
    k, d = centroids.shape
    shares = np.full(k, 1.0 / k) if mix is None else np.asarray(mix)
    n_new = round(n * new_share)
    which = rng.choice(k, size=n - n_new, p=shares)
    x = centroids[which] + rng.normal(0.0, std, size=(n - n_new, d))
    if n_new:
        far = np.full(d, 9.0)
        x = np.vstack([x, far + rng.normal(0.0, std, size=(n_new, d))])
    if shift:
        x[:, :2] += shift
    return x


@pytest.fixture
def draw(vendor_model: CentroidModel) -> Draw:
    def make(rng: np.random.Generator, n: int, **kwargs: Any) -> np.ndarray:
        return _draw(rng, vendor_model.centroids, n, **kwargs)

    return make


@pytest.fixture
def january(vendor_model: CentroidModel, draw: Draw) -> Reference:
    """A 500-row std-2 reference month, judged with the vendor centroids as champion (v1)."""
    champion = CentroidModel(
        vendor_model.centroids, vendor_model.persona_ids, vendor_model.persona_names, version=1
    )
    return Reference.build(champion, draw(np.random.default_rng(2025), 500))
