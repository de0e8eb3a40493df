"""Settings come from the environment; .env.example lists every variable that exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.env_example import render_env_example
from personas.settings import Settings, TopicNames

ROOT = Path(__file__).resolve().parents[3]


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PERSONA_KAFKA_PORT", "19092")
    monkeypatch.setenv("PERSONA_TOPIC_LABELS", "labels-x")
    settings = Settings(_env_file=None)
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert settings.topics.labels == "labels-x"


def test_dsn_for_display_has_no_password():
    settings = Settings(_env_file=None, pg_password="s3cret")
    assert "s3cret" not in settings.pg_dsn(with_password=False)
    assert "s3cret" in settings.pg_dsn()
    assert "s3cret" not in repr(settings)
    assert settings.mlflow_backend_uri().startswith("postgresql+psycopg://")


def test_schema_name_is_validated():
    with pytest.raises(ValueError, match="pg_schema"):
        Settings(_env_file=None, pg_schema="x; DROP TABLE y")


def test_env_example_is_up_to_date():
    committed = (ROOT / ".env.example").read_text()
    assert committed == render_env_example(), "run `make env-example` and commit .env.example"
    for name in ("PERSONA_KAFKA_PORT", "PERSONA_PG_PASSWORD", "PERSONA_TOPIC_LABELS"):
        assert f"\n{name}=" in committed
    assert TopicNames().labels == "persona-labels"


def test_private_topics_append_the_suffix_and_keep_the_dlq_ending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PERSONA_TOPIC_LABELS", "from-the-environment")
    topics = TopicNames.private("t1")
    assert topics.responses == "survey-responses-t1"
    assert topics.dlq == "survey-responses-t1.dlq"
    assert topics.labels == "persona-labels-t1"
    assert topics.model_updates == "model-updates-t1"


def test_settings_env_round_trips_every_kind_of_value(tmp_path: Path) -> None:
    from personas.settings import settings_env

    ca = tmp_path / "ca.pem"
    settings = Settings(
        _env_file=None,
        kafka_bootstrap_servers="a:1,b:2",
        kafka_security_protocol="SASL_SSL",
        kafka_username="u",
        kafka_password="p w",  # type: ignore[arg-type]
        kafka_ssl_ca_file=ca,
        kafka_ssl_check_hostname=False,
        kafka_client_properties={"client.rack": "r1"},
        kafka_min_insync_replicas=2,
        topics=TopicNames.private("x"),
    )
    env = settings_env(settings, base={})
    assert env["PERSONA_KAFKA_PASSWORD_FILE"] == ""  # unset stays unset in the child
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        assert Settings(_env_file=None) == settings


def test_a_renamed_setting_is_refused_with_its_new_name(tmp_path: Path) -> None:
    from personas.errors import ConfigError
    from personas.settings import check_renamed

    check_renamed({"PERSONA_ALLOW_NEW_PERSONAS": "true"}, tmp_path / ".env")  # the new name: fine
    check_renamed({"PERSONA_STREAM_ALLOW_NEW_PERSONAS": "false"}, tmp_path / ".env")  # default
    with pytest.raises(ConfigError, match="PERSONA_STREAM_ALLOW_NEW_PERSONAS is now PERSONA_ALLOW"):
        check_renamed({"PERSONA_STREAM_ALLOW_NEW_PERSONAS": "true"}, tmp_path / ".env")
    (tmp_path / ".env").write_text("PERSONA_SERVE_ALLOW_NEW_PERSONAS=true\n")
    with pytest.raises(ConfigError, match="PERSONA_SERVE_ALLOW_NEW_PERSONAS is now"):
        check_renamed({}, tmp_path / ".env")


def test_the_cli_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import sys

    from persona_cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PERSONA_STREAM_ALLOW_NEW_PERSONAS", "true")
    monkeypatch.setattr(sys, "argv", ["persona", "stack", "status"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: renamed setting: PERSONA_STREAM_ALLOW_NEW_PERSONAS is now "
        "PERSONA_ALLOW_NEW_PERSONAS (rename it in the environment or .env)"
    ]
