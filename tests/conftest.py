"""Fixtures shared by every test. Unit tests need nothing running."""

from __future__ import annotations

import os

import pytest

from personas.catalogue import Catalogue, load_vendor_catalogue
from personas.model import CentroidModel


def pytest_configure(config: pytest.Config) -> None:
    """The monitor and the trainer serve /metrics on fixed default ports; tests run several of
    them at once (and beside a user's own), so every service a test starts has metrics off
    unless the test turns them on with a free port of its own. Inherited by child processes."""
    os.environ.setdefault("PERSONA_MONITOR_METRICS_PORT", "0")
    os.environ.setdefault("PERSONA_TRAINER_METRICS_PORT", "0")


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_vendor_catalogue()


@pytest.fixture(scope="session")
def vendor_model(catalogue: Catalogue) -> CentroidModel:
    return CentroidModel.from_catalogue(catalogue)
