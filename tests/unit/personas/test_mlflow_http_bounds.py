"""MLflow's HTTP client bounds: set in one place; a service's settings replace the CLI's general
defaults; a value the user put in the environment always wins."""

from __future__ import annotations

import os

import pytest

from personas import registry
from serving.server import configure_mlflow_http
from serving.settings import ServeSettings

NAMES = (
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(registry, "_BOUND", set())


def bounds() -> tuple[str | None, ...]:
    return tuple(os.environ.get(name) for name in NAMES)


def test_a_service_replaces_the_cli_defaults() -> None:
    registry.bound_http_client(timeout_s=15, retries=2)  # persona_cli.main
    assert bounds() == ("15", "2", "1")
    registry.bound_http_client(timeout_s=10, retries=1)  # the stream worker
    assert bounds() == ("10", "1", "1")


def test_serve_registry_settings_take_effect_after_the_cli_defaults() -> None:
    registry.bound_http_client(timeout_s=15, retries=2)
    configure_mlflow_http(ServeSettings(_env_file=None, registry_timeout_s=7, registry_retries=3))  # type: ignore[call-arg]
    assert bounds()[:2] == ("7", "3")


def test_the_users_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "99")
    registry.bound_http_client(timeout_s=15, retries=2)
    registry.bound_http_client(timeout_s=10, retries=1)
    assert bounds() == ("99", "1", "1")


def test_mlflow_itself_can_read_the_values() -> None:
    """MLflow parses these as ints: a '1.0' made every registry call raise ValueError."""
    from mlflow import environment_variables as mlflow_env

    registry.bound_http_client(timeout_s=7.5, retries=2)
    assert mlflow_env.MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 7
    assert mlflow_env.MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 2
    assert mlflow_env.MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get() == 1
