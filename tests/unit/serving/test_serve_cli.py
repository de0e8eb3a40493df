"""`persona serve`: help, settings validation and a taken port, all without starting Gunicorn."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from persona_cli import build_app
from personas.errors import ConfigError
from serving.server import PersonaServer, check_port_free
from serving.settings import ServeSettings


def test_help_names_the_options():
    result = CliRunner().invoke(build_app(), ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--workers", "--threads", "--poll-interval"):
        assert option in result.output


def test_taken_port_is_one_readable_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            check_port_free("127.0.0.1", port)


def test_invalid_option_is_a_config_error():
    result = CliRunner().invoke(build_app(), ["serve", "--workers", "0"])
    assert isinstance(result.exception, ConfigError)
    assert "workers" in str(result.exception)


def test_env_settings_and_gunicorn_config(monkeypatch):
    monkeypatch.setenv("PERSONA_SERVE_PORT", "8123")
    monkeypatch.setenv("PERSONA_SERVE_WORKERS", "3")
    monkeypatch.setenv("PERSONA_SERVE_THREADS", "4")
    serve = ServeSettings()
    assert serve.bind == "127.0.0.1:8123"
    app = PersonaServer.build(None, serve)  # type: ignore[arg-type]
    assert app.cfg.bind == ["127.0.0.1:8123"]
    assert (app.cfg.workers, app.cfg.threads) == (3, 4)
    assert app.cfg.preload_app is False  # each worker forks first, then loads its own holder
    assert app.cfg.control_socket_disable is True
    assert ServeSettings(host="::1", port=9).bind == "[::1]:9"
