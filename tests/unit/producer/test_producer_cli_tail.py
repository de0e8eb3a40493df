"""CLI of the producer (generate and option errors), tail's line formats, the timestamp guard."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from persona_cli import build_app
from personas.catalogue import FEATURES
from personas.dead_letters import encode_headers
from personas.errors import ConfigError
from personas.schemas import (
    DeadLetter,
    DriftReport,
    DriftTest,
    ModelUpdated,
    PersonaLabel,
    RetrainCommand,
    SurveyResponse,
    TrainerAlert,
)
from personas.settings import Settings
from producer.publisher import (
    PublishSummary,
    TimestampLimitError,
    TopicTimestampPolicy,
    _check_timestamps,
)
from producer.replay import parse_time
from producer.tail import TailMessage, format_message, resolve_topic
from producer.validation import Events

runner = CliRunner()
NOW = datetime(2025, 3, 1, 12, tzinfo=UTC)
EVENT = uuid.UUID("4934b27f-1c79-4bf8-883a-210d927538c5")


def test_generate_command_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "2025-01.parquet"
    args = ["generate", "--month", "2025-01", "--n", "2000", "--std", "2", "--seed", "1"]
    result = runner.invoke(build_app(), [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{out}: 2000 rows for 2025-01 (std 2, seed 1, 0 scenario(s))")
    df = pd.read_parquet(out)
    assert len(df) == 2000 and df["submitted_at"].dt.month.eq(1).all()
    again = tmp_path / "again.parquet"
    runner.invoke(build_app(), [*args, "--out", str(again)])
    pd.testing.assert_frame_equal(df, pd.read_parquet(again))


def test_generate_original_months_and_scenarios(tmp_path: Path) -> None:
    result = runner.invoke(build_app(), ["generate", "--original", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"2025-0{m}.parquet" for m in range(1, 6)]
    march = pd.read_parquet(tmp_path / "2025-03.parquet")
    residual_std = float(
        np.std(march[list(FEATURES)].to_numpy() - _centroids()[march["true_persona_id"]])
    )
    assert 2.9 < residual_std < 3.3  # the original March: std 3.1

    csv = tmp_path / "drift.csv"
    result = runner.invoke(
        build_app(),
        ["generate", "--original-month", "2025-02", "--new-persona-share", "0.2",
         "--shift-features", "x1", "--shift-by", "3", "--out", str(csv)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    df = pd.read_csv(csv)
    assert len(df) == 500 and (df["true_persona_id"] == 3).sum() == 100


def test_generate_per_persona_shifts(tmp_path: Path) -> None:
    """--shift-by-persona 1,-1,0: Steve's x1, x2 up, Haley's down, Pat's and the rest unchanged."""
    args = ["generate", "--n", "3000", "--seed", "5", "--shift-features", "x1,x2"]
    plain, moved = tmp_path / "plain.parquet", tmp_path / "moved.parquet"
    assert (
        runner.invoke(build_app(), [*args, "--shift-by", "0", "--out", str(plain)]).exit_code == 0
    )
    result = runner.invoke(
        build_app(), [*args, "--shift-by-persona", "1,-1,0", "--out", str(moved)]
    )
    assert result.exit_code == 0, result.output
    before, after = pd.read_parquet(plain), pd.read_parquet(moved)
    diff = after[list(FEATURES)].to_numpy() - before[list(FEATURES)].to_numpy()
    who = before["true_persona_id"].to_numpy()
    np.testing.assert_allclose(diff[who == 0][:, :2], 1.0)
    np.testing.assert_allclose(diff[who == 1][:, :2], -1.0)
    np.testing.assert_allclose(diff[who == 2], 0.0)
    np.testing.assert_allclose(diff[:, 2:], 0.0)


def _centroids() -> np.ndarray:
    from personas.catalogue import load_vendor_catalogue
    from personas.synthetic import DEFAULT_NEW_CENTROID

    return np.vstack([load_vendor_catalogue().centroids, DEFAULT_NEW_CENTROID])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "2025-13"], "month must look like 2025-03"),
        (["--mix", "1,2"], "2 mix weights for 3 personas"),
        (["--mix", "a,b,c"], "--mix must be comma-separated numbers"),
        (["--shift-by", "1"], "--shift-features and --shift-by (or --shift-by-persona) go"),
        (["--shift-by-persona", "1,-1"], "--shift-features and --shift-by (or --shift-by-persona)"),
        (["--shift-features", "x1"], "--shift-features and --shift-by (or --shift-by-persona)"),
        (
            ["--shift-features", "x1", "--shift-by", "1", "--shift-by-persona", "1"],
            "--shift-by and --shift-by-persona exclude each other",
        ),
        (["--shift-features", "x1", "--shift-by-persona", "0,0,0,1"], "personas must be indices"),
        (["--shift-features", "x11", "--shift-by", "1"], "names from x1..x10"),
        (["--gradual"], "--gradual needs a scenario"),
        (["--original-month", "2024-01"], "--original-month must be one of 2025-01"),
        (["--tz", "Nowhere/City"], "unknown time zone"),
        (["--original", "--n", "10"], "--original writes the original five months"),
    ],
)
def test_generate_option_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(build_app(), ["generate", *args, "--out", str(tmp_path / "x.csv")])
    assert isinstance(result.exception, ConfigError)
    assert message in str(result.exception)
    assert not (tmp_path / "x.csv").exists()


def _events(offsets_h: list[float]) -> Events:
    now_us = int(time.time() * 1e6)
    n = len(offsets_h)
    return Events(
        event_id=np.array([str(uuid.uuid4()) for _ in range(n)], dtype=object),
        respondent_id=np.array([f"r{i}" for i in range(n)], dtype=object),
        submitted_us=np.array([now_us + int(h * 3.6e9) for h in offsets_h], dtype=np.int64),
        X=np.zeros((n, 10)),
        true_persona_id=np.full(n, -1),
        line=np.arange(2, n + 2),
    )


def test_timestamp_guard_fails_or_skips() -> None:
    policy = TopicTimestampPolicy(3_600_000, 2**63 - 1, "CreateTime")
    events = _events([-100, 0, 0.9, 0.99, 5])
    summary = PublishSummary(topic="t")
    with pytest.raises(TimestampLimitError, match=r"2 row\(s\) \(first at line 5\)"):
        _check_timestamps(events, policy, 60_000, "t", "fail", summary)
    kept = _check_timestamps(events, policy, 60_000, "t", "skip", summary)
    assert kept.line.tolist() == [2, 3, 4]
    assert summary.skipped_time == 2 and [e.line for e in summary.errors] == [5, 6]
    limited = TopicTimestampPolicy(3_600_000, 3_600_000 * 24, "CreateTime")
    kept = _check_timestamps(events, limited, 60_000, "t", "skip", PublishSummary(topic="t"))
    assert kept.line.tolist() == [3, 4]


def test_parse_time() -> None:
    assert parse_time("2025-03-01") == 1740787200 * 10**6
    assert parse_time("2025-03-01T01:00:00+01:00") == 1740787200 * 10**6
    with pytest.raises(ConfigError, match="not a date"):
        parse_time("soon")


def _msg(value: object, key: str | None = "resp-1") -> TailMessage:
    body = value.model_dump_json().encode() if hasattr(value, "model_dump_json") else value
    return TailMessage("t", 2, 17, 1740830400000, key, body)  # type: ignore[arg-type]


def test_tail_formats_every_topic() -> None:
    features = {f: float(i) for i, f in enumerate(FEATURES)}
    response = SurveyResponse(
        event_id=EVENT, respondent_id="resp-1", submitted_at=NOW, true_persona_id=2, **features
    )
    assert format_message("responses", _msg(response)) == (
        "2025-03-01T12:00:00.000Z [2:17] resp-1 event=4934b27f-1c79-4bf8-883a-210d927538c5 "
        "x=[0.00, 1.00, 2.00, 3.00, 4.00, 5.00, 6.00, 7.00, 8.00, 9.00] true=2"
    )
    label = PersonaLabel(
        event_id=EVENT, respondent_id="resp-1", submitted_at=NOW, persona_id=0,
        persona_name="Sustainable Steve", distance=3.25, margin=12.5, is_outlier=True,
        model_version=4, labelled_at=NOW, **features,
    )  # fmt: skip
    assert format_message("labels", _msg(label)).endswith(
        "resp-1 → Sustainable Steve (0) d=3.25 margin=12.50 model v4 OUTLIER"
    )
    headers = encode_headers("not_json", "value is not JSON", "survey-responses", 1, 9, NOW)
    dead = TailMessage("t", 2, 17, 1740830400000, "k", b"x", headers, b"k")
    assert format_message("dlq", dead).endswith(
        "not_json: value is not JSON (from survey-responses[1]@9, key=k)"
    )
    assert DeadLetter.model_validate(dead.json_value()).original_value_b64 == "eA=="
    assert json.loads(dead.to_json())["value"]["error_kind"] == "not_json"
    report = DriftReport(
        window_id="2025-03-01T00", window_start=NOW, window_end=NOW, event_count=120,
        model_version=1, status="drift", created_at=NOW,
        tests=[DriftTest(name="distance_mwu", failed=True), DriftTest(name="mix", failed=False)],
    )  # fmt: skip
    assert format_message("alerts", _msg(report)).endswith(
        "window 2025-03-01T00 DRIFT events=120 model v1 failed: distance_mwu"
    )
    alert = TrainerAlert(kind="gate_failed", message="new model is worse", created_at=NOW)
    assert format_message("alerts", _msg(alert)).endswith("gate_failed: new model is worse")
    command = RetrainCommand(
        command_id=EVENT, range_start=NOW, range_end=NOW, reason="drift", requested_by="monitor",
        requested_at=NOW,
    )  # fmt: skip
    assert "retrain 4934b27f" in format_message("retrain", _msg(command))
    update = ModelUpdated(
        model_name="persona-model", version=3, alias="champion", run_id="abc",
        previous_version=2, updated_at=NOW,
    )  # fmt: skip
    assert format_message("model-updates", _msg(update)).endswith(
        "persona-model@champion = v3 (was v2) run=abc"
    )


def test_tail_survives_unexpected_values() -> None:
    assert "(not a JSON object) 'garbage'" in format_message("labels", _msg(b"garbage"))
    odd = format_message("labels", _msg(json.dumps({"a": 1}).encode()))
    assert "(unexpected shape: 'respondent_id')" in odd
    assert _msg(b"garbage").to_json() == json.dumps(
        {"topic": "t", "partition": 2, "offset": 17, "timestamp_ms": 1740830400000,
         "key": "resp-1", "value": "garbage"}
    )  # fmt: skip


def test_resolve_topic() -> None:
    settings = Settings()
    assert resolve_topic(settings, "model-updates") == settings.topics.model_updates
    assert resolve_topic(settings, "dlq") == settings.topics.dlq
    with pytest.raises(ConfigError, match="unknown topic 'nope'"):
        resolve_topic(settings, "nope")
