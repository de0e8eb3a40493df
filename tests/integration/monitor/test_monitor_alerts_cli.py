"""`persona alerts` against a real topic: one line per message, --json, bounded by --max/--timeout."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from persona_cli import build_app
from personas.schemas import DriftReport, DriftTest, TrainerAlert
from personas.settings import Settings

pytestmark = pytest.mark.integration

START = datetime(2025, 3, 3, tzinfo=UTC)


def _messages() -> list[DriftReport | TrainerAlert]:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    ok = DriftReport(
        window_id="7d-2025-02-24T00:00:00Z",
        window_start=START - timedelta(days=7),
        window_end=START,
        event_count=115,
        model_version=1,
        status="ok",
        mean_distance=6.3,
        created_at=now,
    )
    drift = DriftReport(
        window_id="7d-2025-03-03T00:00:00Z",
        window_start=START,
        window_end=START + timedelta(days=7),
        event_count=116,
        model_version=1,
        status="drift",
        tests=[
            DriftTest(name="distance_shift", p_value=1.2e-9, threshold=0.0025, failed=True),
            DriftTest(name="persona_mix", p_value=0.4, threshold=0.0025, failed=False),
            DriftTest(name="evidently:x1", p_value=0.01, threshold=0.05, failed=True),
        ],
        mean_distance=9.8,
        report_uri="/tmp/r.html",
        created_at=now,
    )
    trainer = TrainerAlert(
        kind="candidate_persona",
        command_id=uuid.uuid4(),
        message="cluster 3 matches no persona",
        created_at=now,
    )
    return [ok, drift, trainer]


def test_alerts_lines_and_json(isolated_settings: Settings) -> None:
    from confluent_kafka import Producer

    from personas.kafka import producer_config

    settings = isolated_settings
    producer = Producer(producer_config(settings))
    messages = _messages()
    for m in messages:
        producer.produce(settings.topics.alerts, m.model_dump_json().encode())
    producer.produce(settings.topics.alerts, b"not json")
    assert producer.flush(10) == 0

    env = {"PERSONA_TOPIC_ALERTS": settings.topics.alerts}
    runner = CliRunner()
    result = runner.invoke(
        build_app(), ["alerts", "--from-beginning", "--max", "4", "--timeout", "30"], env=env
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("2025-02-24 00:00 → 2025-03-03 00:00  ok ")
    assert "n=115" in lines[0] and "model v1" in lines[0] and "failed" not in lines[0]
    assert lines[1].startswith("2025-03-03 00:00 → 2025-03-10 00:00  drift ")
    assert "failed: distance_shift p=1.2e-09  report /tmp/r.html" in lines[1]
    assert "evidently" not in lines[1]  # informational tests are not listed as failures
    assert lines[2] == "trainer   candidate_persona cluster 3 matches no persona"
    assert lines[3] == "(unreadable message) b'not json'"

    result = runner.invoke(
        build_app(),
        ["alerts", "--from-beginning", "--json", "--max", "3", "--timeout", "30"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    parsed = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [p.get("status", p["kind"]) for p in parsed] == ["ok", "drift", "candidate_persona"]

    # only new alerts by default: nothing arrives, so --timeout ends it
    result = runner.invoke(build_app(), ["alerts", "--timeout", "2"], env=env)
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "no alerts\n"
