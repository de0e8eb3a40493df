"""Fixtures shared by every test. Unit tests need nothing running."""

from __future__ import annotations

import pytest

from personas.catalogue import Catalogue, load_vendor_catalogue
from personas.model import CentroidModel


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_vendor_catalogue()


@pytest.fixture(scope="session")
def vendor_model(catalogue: Catalogue) -> CentroidModel:
    return CentroidModel.from_catalogue(catalogue)
