"""draw_window's per-persona drift options (issue #16): they move only the persona they name and
leave the sequence of draws, on which the calibration tables depend, unchanged."""

from __future__ import annotations

import numpy as np

from personas.catalogue import load_vendor_catalogue
from personas.synthetic import draw_window

CENTROIDS = load_vendor_catalogue().centroids


def _members(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.argmin(((x[:, None, :] - CENTROIDS[None]) ** 2).sum(axis=2), axis=1))


def test_no_option_keeps_the_draws() -> None:
    plain = draw_window(np.random.default_rng(3), CENTROIDS, 400, shift=1.0)
    same = draw_window(
        np.random.default_rng(3),
        CENTROIDS,
        400,
        shift=1.0,
        persona_shift=np.zeros((3, 10)),
        persona_scale=(1.0, 1.0, 1.0),
    )
    np.testing.assert_array_equal(plain, same)


def test_persona_shift_and_scale_move_only_their_persona() -> None:
    moved = np.zeros((3, 10))
    moved[1, 0] = 5.0
    base = draw_window(np.random.default_rng(4), CENTROIDS, 3000)
    x = draw_window(np.random.default_rng(4), CENTROIDS, 3000, persona_shift=moved)
    who = _members(base)
    np.testing.assert_allclose((x - base)[who == 1, 0], 5.0)
    np.testing.assert_allclose((x - base)[who != 1], 0.0)
    wide = draw_window(np.random.default_rng(4), CENTROIDS, 3000, persona_scale=(2.0, 1.0, 1.0))
    np.testing.assert_allclose(wide[who == 0] - CENTROIDS[0], 2 * (base[who == 0] - CENTROIDS[0]))
    np.testing.assert_allclose(wide[who != 0], base[who != 0])


def test_strength_scales_each_row_of_a_gradual_shift() -> None:
    moved = np.zeros((3, 10))
    moved[:, 2] = 1.0
    ramp = np.linspace(0.0, 1.0, 200)
    base = draw_window(np.random.default_rng(5), CENTROIDS, 200)
    x = draw_window(
        np.random.default_rng(5), CENTROIDS, 200, shift=2.0, persona_shift=moved, strength=ramp
    )
    np.testing.assert_allclose((x - base)[:, 0], 2.0 * ramp)
    np.testing.assert_allclose((x - base)[:, 2], ramp)
