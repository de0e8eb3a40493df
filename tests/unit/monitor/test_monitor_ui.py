"""`persona ui`: a missing workspace or a taken port is one clear line, before Evidently starts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.ui import check_port, check_workspace, ui_argv, ui_url
from persona_cli import build_app
from personas.errors import ConfigError


def test_a_taken_port_names_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            ConfigError, match=f"port {port} on 127.0.0.1 is taken: .*PERSONA_MONITOR_UI_PORT"
        ):
            check_port("127.0.0.1", port)
    check_port("127.0.0.1", port)  # free again


def test_a_missing_or_empty_workspace_says_how_to_fill_it(tmp_path: Path) -> None:
    for path in (tmp_path / "missing", tmp_path):
        with pytest.raises(ConfigError, match=r"PERSONA_MONITOR_EVIDENTLY_WORKSPACE=.*make demo"):
            check_workspace(path)
    (tmp_path / "0190c5a2-0000-7000-8000-000000000000").mkdir()
    (tmp_path / "0190c5a2-0000-7000-8000-000000000000" / "metadata.json").write_text("{}")
    check_workspace(tmp_path)


def test_the_command_is_this_environment_s_evidently_ui(tmp_path: Path) -> None:
    argv = ui_argv(tmp_path, "127.0.0.1", 8123)
    assert Path(argv[0]).name == "evidently" and Path(argv[0]).exists()
    assert argv[1:] == ["ui", "--workspace", str(tmp_path), "--host", "127.0.0.1", "--port", "8123"]
    assert ui_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"


def test_persona_ui_without_a_workspace_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("PERSONA_MONITOR_EVIDENTLY_WORKSPACE", raising=False)
    result = CliRunner().invoke(build_app(), ["ui"])
    assert isinstance(result.exception, ConfigError)
    assert "pass --workspace DIR or set PERSONA_MONITOR_EVIDENTLY_WORKSPACE" in str(
        result.exception
    )
    result = CliRunner().invoke(build_app(), ["ui", "--workspace", str(tmp_path / "none")])
    assert isinstance(result.exception, ConfigError)
    assert "no Evidently workspace with a project at" in str(result.exception)


def test_help_explains_the_ui() -> None:
    result = CliRunner().invoke(build_app(), ["ui", "--help"])
    assert result.exit_code == 0
    assert "drift history" in result.output and "--port" in result.output
