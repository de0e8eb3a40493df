"""CLI and settings errors a user can cause: one readable line, exit code 2, nothing started."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from monitor.settings import MonitorSettings, parse_duration
from persona_cli import build_app
from personas.errors import ConfigError


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--window", "7x"],
            "monitor setting window: Value error, '7x' is not a duration "
            "(use e.g. 30s, 15m, 1h, 1d, 7d, 2w)",
        ),
        (
            ["--reports", "sometimes"],
            "monitor setting reports: Input should be 'never', 'non_ok' or 'all'",
        ),
        (
            ["--window", "5"],
            "monitor setting window: Value error, a count window needs at least 12 events",
        ),
    ],
)
def test_bad_options_are_config_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(build_app(), ["monitor", *args])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == message
    assert result.exception.exit_code == 2


def test_durations() -> None:
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    assert parse_duration(" 2w ") == timedelta(weeks=2)
    with pytest.raises(ConfigError):
        parse_duration("soon")


def test_unknown_test_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown tests"):
        MonitorSettings(_env_file=None, tests=("distance_shift", "vibes"))  # type: ignore[call-arg]


def test_help_names_both_commands() -> None:
    result = CliRunner().invoke(build_app(), ["--help"])
    assert result.exit_code == 0
    assert re.search(r"│ monitor +Watch persona-labels in event-time windows", result.output)
    assert re.search(r"│ alerts +Watch drift-alerts for a person", result.output)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("distance_shift, far_tail", ("distance_shift", "far_tail")),
        ('["persona_mix"]', ("persona_mix",)),
    ],
)
def test_tests_setting_from_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: tuple[str, ...]
) -> None:
    """.env.example writes lists comma-separated; JSON works too."""
    monkeypatch.setenv("PERSONA_MONITOR_TESTS", value)
    assert MonitorSettings(_env_file=None).tests == expected  # type: ignore[call-arg]
