"""Synthetic survey data around persona centroids, and drift scenarios over it (pure numpy).

Shared by the producer (which adds months, timestamps, ids and files), the trainer and every test
that needs data, so no service has to import another. Everything is a pure function of its inputs
and an explicit ``numpy.random.Generator``: the same seed gives the same data.

The base model is the original project's ``make_blobs``: each row belongs to one persona and is its
centroid plus isotropic normal noise of one ``std`` on every feature, no clipping or rounding. Rows
are split between personas by exact counts (largest remainder of ``n · weights``, like make_blobs'
equal split) so that a persona mix is exactly what was asked, then shuffled.

Drift scenarios are small frozen dataclasses applied to a :class:`Batch` with a per-row
``strength`` in [0, 1] (1 = the full effect). They keep each row's noise vector (its *residual*
from its persona's centroid) whenever they move a row, so a scenario changes what it claims and
nothing else. :class:`Gradual` wraps any scenario and lets its strength grow with the row's position
in the month (``Batch.t``), which simulates drift that creeps in instead of arriving at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

__all__ = [
    "DEFAULT_NEW_CENTROID",
    "Batch",
    "Gradual",
    "MeanShift",
    "MixChange",
    "NewPersona",
    "Scenario",
    "VarianceGrowth",
    "allocate",
    "apply_scenarios",
    "draw_window",
    "generate",
    "simulate",
]

#: Where a new persona appears by default: the 4th centre of the generator the vendor centroids come
#: from (``make_blobs(n_features=10, centers=4, random_state=42)``; its first three centres are the
#: vendor's). It lies 20 units from Pragmatic Pat and 35-37 from the others (they are 16-28 apart).
DEFAULT_NEW_CENTROID: tuple[float, ...] = tuple(
    float(v) for v in np.random.RandomState(42).uniform(-10.0, 10.0, size=(4, 10))[3]
)


def draw_window(
    rng: np.random.Generator,
    centroids: np.ndarray,
    n: int,
    *,
    std: float = 2.0,
    shift: float = 0.0,
    new_share: float = 0.0,
    mix: Sequence[float] | None = None,
    new_centroid: Sequence[float] | np.ndarray | None = None,
    persona_shift: np.ndarray | None = None,
    persona_scale: Sequence[float] | np.ndarray | None = None,
    strength: np.ndarray | None = None,
) -> np.ndarray:
    """Features of one i.i.d. window, for calibrating and testing drift checks by the thousand.

    Unlike ``generate``, persona membership is drawn at random (a window's mix varies as live
    traffic does) and nothing but the feature matrix is built. ``shift`` moves x1 and x2;
    ``new_share`` of the rows come from ``new_centroid`` (default: 9 on every feature). The
    calibration tables in docs/monitor.md depend on this exact sequence of draws.

    Drift that differs between personas (applied after the draws, so the sequence is unchanged):
    ``persona_shift`` (k × d) is added to each row of persona j as its row j, ``persona_scale``
    (k) multiplies persona j's noise. ``strength`` (one value per row, in [0, 1]) scales
    ``shift`` and ``persona_shift`` per row: a gradual drift, each row at its point of the ramp.
    """
    k, d = centroids.shape
    shares = np.full(k, 1.0 / k) if mix is None else np.asarray(mix)
    n_new = round(n * new_share)
    which = rng.choice(k, size=n - n_new, p=shares)
    noise = rng.normal(0.0, std, size=(n - n_new, d))
    if persona_scale is not None:
        noise *= np.asarray(persona_scale, dtype=float)[which][:, None]
    x = centroids[which] + noise
    if persona_shift is not None:
        moved = np.asarray(persona_shift, dtype=float)[which]
        x += moved if strength is None else moved * strength[: n - n_new, None]
    if n_new:
        far = np.full(d, 9.0) if new_centroid is None else np.asarray(new_centroid, dtype=float)
        x = np.vstack([x, far + rng.normal(0.0, std, size=(n_new, d))])
    if shift:
        x[:, :2] += shift if strength is None else shift * strength[:, None]
    return np.asarray(x)


def allocate(n: int, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Split ``n`` into counts proportional to ``weights`` (largest remainder, exact sum)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative, finite and not all zero: {w.tolist()}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    exact = n * w / w.sum()
    counts: np.ndarray = np.floor(exact).astype(np.int64)
    short = n - int(counts.sum())
    if short:
        # Ties go to the lower index, as make_blobs gives the remainder to the first centres.
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:short]] += 1
    return counts


def generate(
    centroids: np.ndarray,
    n: int,
    std: float,
    rng: np.random.Generator,
    weights: Sequence[float] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows around ``centroids`` (k × d), isotropic noise ``std``; returns (X, persona_idx).

    ``persona_idx`` indexes the rows of ``centroids``. ``weights`` (k, any positive scale) sets the
    persona mix exactly; the default is an equal split. Rows are in random order.
    """
    c = np.asarray(centroids, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] == 0:
        raise ValueError(f"centroids must be a non-empty (k, d) array, got shape {c.shape}")
    if not (np.isfinite(std) and std >= 0):
        raise ValueError(f"std must be finite and >= 0, got {std}")
    k, d = c.shape
    counts = allocate(n, np.ones(k) if weights is None else weights)
    if counts.size != k:
        raise ValueError(f"{counts.size} weights for {k} centroids")
    idx = rng.permutation(np.repeat(np.arange(k, dtype=np.int64), counts))
    X = c[idx] + rng.normal(0.0, std, size=(n, d)) if std > 0 else c[idx].copy()
    return X, idx


@dataclass(frozen=True)
class Batch:
    """Rows with their persona and position in time; what scenarios read and return.

    ``persona`` indexes ``centroids`` (a scenario adding a persona appends a centroid); ``t`` is
    each row's position in its period, 0 at the start and 1 at the end (gradual drift reads it).
    """

    X: np.ndarray
    persona: np.ndarray
    centroids: np.ndarray
    t: np.ndarray

    def __post_init__(self) -> None:
        n = self.X.shape[0]
        if self.persona.shape != (n,) or self.t.shape != (n,):
            raise ValueError("X, persona and t must have the same number of rows")

    @property
    def residual(self) -> np.ndarray:
        """Each row minus its persona's centroid: the noise a scenario keeps when moving a row."""
        residual: np.ndarray = self.X - self.centroids[self.persona]
        return residual


class Scenario(Protocol):
    """A drift scenario: a pure transform of a batch at a per-row strength in [0, 1]."""

    def apply(self, batch: Batch, rng: np.random.Generator, strength: np.ndarray) -> Batch: ...


def _full(batch: Batch) -> np.ndarray:
    return np.ones(batch.X.shape[0])


@dataclass(frozen=True)
class VarianceGrowth:
    """Every row's noise scaled by ``factor`` (the original March: std 2 → 3.1 is factor 1.55).

    Simulates answers getting noisier around unchanged personas (a new panel, a worse survey).
    Means and the persona mix do not change.
    """

    factor: float

    def apply(self, batch: Batch, rng: np.random.Generator, strength: np.ndarray) -> Batch:
        if not (np.isfinite(self.factor) and self.factor >= 0):
            raise ValueError(f"variance factor must be finite and >= 0, got {self.factor}")
        scale = 1.0 + (self.factor - 1.0) * strength
        X = batch.centroids[batch.persona] + batch.residual * scale[:, None]
        return replace(batch, X=X)


@dataclass(frozen=True)
class MeanShift:
    """Add ``delta`` to the chosen features (0-based column indices) of every row, or only of the
    rows of ``personas`` (indices into the centroids; empty = everyone).

    Simulates a systematic change of how everyone answers some questions (a reworded item, a
    changed scale), or of how one segment answers them ("Steve gets more price-sensitive": two
    such shifts with opposite signs move personas apart and cancel in pooled statistics). Other
    features, the noise and the persona mix do not change.
    """

    features: tuple[int, ...]
    delta: float
    personas: tuple[int, ...] = ()

    def apply(self, batch: Batch, rng: np.random.Generator, strength: np.ndarray) -> Batch:
        d = batch.X.shape[1]
        cols = np.asarray(self.features, dtype=np.int64)
        if cols.size == 0 or np.any(cols < 0) or np.any(cols >= d):
            raise ValueError(f"features must be column indices in [0, {d}), got {self.features}")
        k = batch.centroids.shape[0]
        if any(not 0 <= j < k for j in self.personas):
            raise ValueError(f"personas must be indices in [0, {k}), got {self.personas}")
        rows = np.isin(batch.persona, self.personas) if self.personas else np.ones(len(batch.X))
        X = batch.X.copy()
        X[:, cols] += (self.delta * strength * rows)[:, None]
        return replace(batch, X=X)


@dataclass(frozen=True)
class NewPersona:
    """A share of rows moves to a new centroid (keeping its noise): a persona the vendor lacks.

    Simulates a customer group emerging that none of the existing personas describes. The rows are
    taken from every persona in proportion to its size; their persona index becomes the new
    centroid's (``len(centroids)`` before the call). At full strength exactly
    ``round(share · n)`` rows move; with per-row strengths the expected share is
    ``share · strength``.
    """

    share: float
    centroid: tuple[float, ...] = DEFAULT_NEW_CENTROID

    def apply(self, batch: Batch, rng: np.random.Generator, strength: np.ndarray) -> Batch:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"new persona share must be in [0, 1], got {self.share}")
        new_c = np.asarray(self.centroid, dtype=np.float64)
        if new_c.shape != (batch.X.shape[1],):
            raise ValueError(f"new centroid has {new_c.size} coordinates, not {batch.X.shape[1]}")
        n = batch.X.shape[0]
        p = self.share * np.clip(strength, 0.0, 1.0)
        m = round(float(p.sum()))
        centroids = np.vstack([batch.centroids, new_c])
        persona = batch.persona.copy()
        if m > 0:
            rows = rng.choice(n, size=m, replace=False, p=p / p.sum())
            persona[rows] = centroids.shape[0] - 1
        X = centroids[persona] + batch.residual
        return replace(batch, X=X, persona=persona, centroids=centroids)


@dataclass(frozen=True)
class MixChange:
    """Reassign rows between personas so their shares become ``weights`` (noise kept).

    Simulates a change of who answers (a new channel recruits more of one persona). Only the fewest
    rows needed move, from over- to under-represented personas; at full strength the counts are
    exactly ``allocate(n, weights)``. With per-row strengths each planned move happens with that
    row's strength. Weights cover the personas present when the scenario runs.
    """

    weights: tuple[float, ...]

    def apply(self, batch: Batch, rng: np.random.Generator, strength: np.ndarray) -> Batch:
        k = batch.centroids.shape[0]
        if len(self.weights) != k:
            raise ValueError(f"{len(self.weights)} mix weights for {k} personas")
        n = batch.X.shape[0]
        target = allocate(n, self.weights)
        current = np.bincount(batch.persona, minlength=k)
        persona = batch.persona.copy()
        donors: list[np.ndarray] = []
        for j in range(k):
            surplus = current[j] - target[j]
            if surplus > 0:
                members = np.flatnonzero(batch.persona == j)
                donors.append(rng.choice(members, size=surplus, replace=False))
        if donors:
            moved = rng.permutation(np.concatenate(donors))
            receivers = np.repeat(np.arange(k), np.maximum(target - current, 0))
            keep = rng.random(moved.size) < np.clip(strength[moved], 0.0, 1.0)
            persona[moved[keep]] = receivers[keep]
        X = batch.centroids[persona] + batch.residual
        return replace(batch, X=X, persona=persona)


@dataclass(frozen=True)
class Gradual:
    """Let ``inner`` grow linearly through the period: no effect before ``start``, full at ``end``.

    Simulates drift that creeps in (a slow change of the market) rather than a step. Positions are
    ``Batch.t`` (0 = first day, 1 = end of the period).
    """

    inner: Scenario
    start: float = 0.0
    end: float = 1.0

    def apply(self, batch: Batch, rng: np.random.Generator, strength: np.ndarray) -> Batch:
        if not 0.0 <= self.start < self.end <= 1.0:
            raise ValueError(
                f"gradual drift needs 0 <= start < end <= 1, got {self.start}, {self.end}"
            )
        ramp = np.clip((batch.t - self.start) / (self.end - self.start), 0.0, 1.0)
        return self.inner.apply(batch, rng, strength * ramp)


def apply_scenarios(batch: Batch, scenarios: Sequence[Scenario], rng: np.random.Generator) -> Batch:
    """Apply scenarios in order (each sees the previous one's output) at full strength."""
    for scenario in scenarios:
        batch = scenario.apply(batch, rng, _full(batch))
    return batch


def simulate(
    centroids: np.ndarray,
    n: int,
    std: float,
    rng: np.random.Generator,
    *,
    weights: Sequence[float] | np.ndarray | None = None,
    scenarios: Sequence[Scenario] = (),
    t: np.ndarray | None = None,
) -> Batch:
    """:func:`generate` then ``scenarios`` in order; ``t`` (positions in [0, 1]) defaults to evenly
    spaced rows, i.e. the rows are taken to be in time order."""
    X, idx = generate(centroids, n, std, rng, weights)
    if t is None:
        t = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(n)
    batch = Batch(X=X, persona=idx, centroids=np.asarray(centroids, dtype=np.float64), t=t)
    return apply_scenarios(batch, scenarios, rng)
