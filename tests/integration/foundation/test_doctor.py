"""`persona doctor` against the real local stack: each service gets its lines, each fault its own
line naming the fix, and the exit code says whether everything holds. (The secured cluster's
refusals — wrong password, untrusted CA, missing ACL — are in tests/integration/cluster.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from personas.doctor import Check, diagnose
from personas.settings import Settings, TopicNames, settings_env

PERSONA = str(Path(sys.executable).parent / "persona")


def _doctor(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PERSONA, "doctor", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _by_what(checks: list[Check]) -> dict[tuple[str, str], Check]:
    return {(c.service, c.what): c for c in checks}


def test_a_healthy_stack_without_a_champion_fails_only_the_champion(
    isolated_settings: Settings,
) -> None:
    checks = diagnose(isolated_settings)
    failed = [c for c in checks if not c.ok]
    assert [(c.service, c.what) for c in failed] == [("MLflow", "champion")]
    assert "persona train bootstrap" in failed[0].detail
    seen = {(c.service, c.what) for c in checks}
    for expected in [
        ("Kafka", "reachable"),
        ("Kafka", "TLS verified"),
        ("Kafka", "authenticated"),
        ("Kafka", "authorised"),
        ("Kafka", "topics"),
        ("PostgreSQL", "reachable"),
        ("PostgreSQL", "authenticated"),
        ("PostgreSQL", "schema"),
        ("MLflow", "reachable"),
        ("MLflow", "authenticated"),
        ("MLflow", "champion"),
    ]:
        assert expected in seen


def test_cli_json_and_exit_code(isolated_settings: Settings) -> None:
    result = _doctor(isolated_settings, "--json")
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert {c["what"] for c in document["checks"] if c["status"] == "fail"} == {"champion"}


def test_each_dead_or_wrong_service_is_its_own_line(isolated_settings: Settings) -> None:
    wrong = isolated_settings.model_copy(
        update={"kafka_port": 1, "pg_password": "not-the-password", "mlflow_port": 9}
    )
    result = _doctor(wrong, "--timeout", "3")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("FAIL Kafka") and "reachable" in line and "Connection refused" in line
        for line in lines
    ), lines
    assert any(
        "PostgreSQL" in line and "authenticated" in line and "wrong user or password" in line
        for line in lines
    ), lines
    assert any("MLflow" in line and "reachable" in line and "FAIL" in line for line in lines)
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_topics_and_an_unmigrated_schema_name_their_fix(
    isolated_settings: Settings, unique: str
) -> None:
    elsewhere = isolated_settings.model_copy(
        update={"topics": TopicNames.private(f"absent-{unique}"), "pg_schema": f"none_{unique}"}
    )
    checks = _by_what(diagnose(elsewhere, ["stream"]))
    assert checks[("Kafka", "topics")].status == "fail"
    assert "persona topics create" in checks[("Kafka", "topics")].detail
    assert checks[("PostgreSQL", "schema")].status == "fail"
    assert "persona db migrate" in checks[("PostgreSQL", "schema")].detail


def test_topics_that_differ_from_the_settings_are_reported(isolated_settings: Settings) -> None:
    other = isolated_settings.model_copy(update={"kafka_partitions": 3})
    checks = _by_what(diagnose(other, ["stream"]))
    topics = checks[("Kafka", "topics")]
    assert topics.status == "fail"
    assert f"{other.topics.responses}: 4 partitions (want 3)" in topics.detail
    created = subprocess.run(
        [PERSONA, "topics", "create"],
        env=settings_env(other),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert created.returncode == 1
    assert f"differs: {other.topics.labels}: 4 partitions (want 3)" in created.stderr


def test_an_unknown_service_is_one_line(isolated_settings: Settings) -> None:
    result = _doctor(isolated_settings, "--service", "bogus")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown service 'bogus'; choose from producer, stream, monitor, trainer, serve"
    ]
