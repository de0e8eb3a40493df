"""Commands this package adds to `persona`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root CLI (filled in as the service is built)."""
