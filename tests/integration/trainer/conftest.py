"""Trainer integration fixtures (helpers live in trainer_helpers.py)."""

from __future__ import annotations

import pytest

from trainer.settings import TrainerSettings


@pytest.fixture
def trainer_settings() -> TrainerSettings:
    return TrainerSettings(
        _env_file=None,  # type: ignore[call-arg]
        bootstrap_rows=900,
        reference_rows=2000,
        min_samples=300,
        silhouette_rows=1000,
    )
