"""Producer against the real broker (and PostgreSQL for replay --from-db): publish, consume back,
bad files, future timestamps, raw rows, replay order and pacing, tail from a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from personas import db
from personas.catalogue import FEATURES, Catalogue
from personas.errors import InvalidEvent
from personas.schemas import parse_survey_response
from personas.settings import Settings
from producer.files import write_events
from producer.generator import MonthSpec, generate_month
from producer.publisher import (
    InvalidRowsError,
    TimestampLimitError,
    publish_file,
    publish_raw_frame,
    publish_rows,
)
from producer.replay import replay
from producer.tail import TailMessage, consume

BAD_CSV = """\
event_id,respondent_id,submitted_at,x1,x2,x3,x4,x5,x6,x7,x8,x9,x10,true_persona_id
4934b27f-1c79-4bf8-883a-210d927538c5,resp-1,2025-03-01T00:00:00.471Z,1,2,3,4,5,6,7,8,9,10,1
not-a-uuid,resp-2,2025-03-01T00:00:00.471Z,1,2,3,4,5,6,7,8,9,10,1
4934b27f-1c79-4bf8-883a-210d927538c6,,2025-03-01T00:00:00,1,2,abc,4,5,6,7,8,9,10,
4934b27f-1c79-4bf8-883a-210d927538c8,resp-6,2025-03-01 10:00:00.123456+00:00,1,2,3,4,5,6,7,8,9,10,
"""


def _read_all(settings: Settings, expected: int, topic: str | None = None) -> list[TailMessage]:
    """Everything on the topic; waits up to 20 s for ``expected`` messages, then 1 s for extras."""
    topic = topic or settings.topics.responses
    got = list(consume(settings, topic, from_beginning=True, max_messages=expected, timeout_s=20))
    got += list(consume(settings, topic, from_beginning=True, timeout_s=1))[len(got) :]
    return got


def _ms(stamps: pd.Series) -> np.ndarray:
    return stamps.dt.as_unit("ms").astype("int64").to_numpy()


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "PERSONA_TOPIC_RESPONSES": settings.topics.responses,
        "PERSONA_TOPIC_LABELS": settings.topics.labels,
        "PERSONA_PG_SCHEMA": settings.pg_schema,
    }


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_persona(), *args],
        env=_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _persona() -> str:
    return str(Path(sys.executable).with_name("persona"))


def test_publish_a_month_and_consume_it_back(
    isolated_settings: Settings, catalogue: Catalogue
) -> None:
    month = generate_month(MonthSpec("2025-02", 3000, 2.0, 11), catalogue)
    summary = publish_rows(isolated_settings, month)
    assert (summary.sent, summary.failed, summary.invalid, summary.rows) == (3000, 0, 0, 3000)

    got = _read_all(isolated_settings, 3000)
    assert len(got) == 3000
    by_id = month.set_index("event_id")
    partitions_used = {m.partition for m in got}
    assert len(partitions_used) == isolated_settings.kafka_partitions
    for msg in got:
        event = parse_survey_response(msg.value)
        row = by_id.loc[str(event.event_id)]
        assert msg.key == row["respondent_id"] == event.respondent_id
        assert msg.timestamp_ms == row["submitted_at"].value // 1_000_000
        assert event.submitted_at == row["submitted_at"].to_pydatetime()
        assert event.features() == tuple(float(row[f]) for f in FEATURES)
        assert event.true_persona_id == row["true_persona_id"]
    assert sorted(parse_survey_response(m.value).event_id.hex for m in got) == sorted(
        v.replace("-", "") for v in month["event_id"]
    )
    # A respondent's events share a partition: same key, same partition.
    assert all(m.partition == got[0].partition for m in got if m.key == got[0].key)


def test_bad_file_reports_rows_and_sends_only_valid_ones(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV)
    with pytest.raises(InvalidRowsError) as failed:
        publish_file(isolated_settings, path, on_invalid="fail")
    assert [str(e) for e in failed.value.errors] == [
        "line 3: event_id: not a UUID ('not-a-uuid')",
        "line 4: respondent_id: missing; submitted_at: no time zone ('2025-03-01T00:00:00'); "
        "add Z or +00:00; x3: not a number ('abc')",
    ]
    assert _read_all(isolated_settings, 0) == []  # nothing sent

    cli = _cli(isolated_settings, "publish", str(path), "--on-invalid", "fail")
    assert cli.returncode == 2
    assert "invalid: line 3: event_id: not a UUID ('not-a-uuid')" in cli.stderr
    assert "2 invalid row(s), nothing sent" in cli.stderr

    cli = _cli(isolated_settings, "publish", str(path))
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith(
        f"2 sent to {isolated_settings.topics.responses}, 0 failed, 2 invalid"
    )
    got = _read_all(isolated_settings, 2)
    assert sorted(str(parse_survey_response(m.value).event_id) for m in got) == [
        "4934b27f-1c79-4bf8-883a-210d927538c5",
        "4934b27f-1c79-4bf8-883a-210d927538c8",
    ]


def test_future_timestamps_are_refused_before_anything_is_sent(
    isolated_settings: Settings, catalogue: Catalogue
) -> None:
    rows = generate_month(MonthSpec("2025-01", 10, 2.0, 1), catalogue)
    now = pd.Timestamp.now(tz="UTC").floor("ms")
    offsets = [-48, -24, -2, -1, 0, 0.5, 2, 3, 24, 48]  # hours; the broker allows up to +1 h
    rows["submitted_at"] = [now + pd.Timedelta(hours=h) for h in offsets]
    with pytest.raises(TimestampLimitError, match=r"4 row\(s\) \(first at line 7\)"):
        publish_rows(isolated_settings, rows)
    assert _read_all(isolated_settings, 0) == []

    summary = publish_rows(isolated_settings, rows, on_future="skip")
    assert (summary.sent, summary.failed, summary.skipped_time) == (6, 0, 4)
    assert [e.line for e in summary.errors] == [7, 8, 9, 10]
    got = _read_all(isolated_settings, 6)
    assert sorted(m.timestamp_ms for m in got) == sorted(
        t.value // 1_000_000 for t in rows["submitted_at"][:6]
    )


def test_raw_rows_reach_the_topic_unvalidated(isolated_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    summary = publish_raw_frame(isolated_settings, df)
    assert (summary.sent, summary.failed) == (4, 0)
    got = _read_all(isolated_settings, 4)
    outcomes = []
    for msg in sorted(got, key=lambda m: json.loads(m.value)["event_id"]):
        try:
            parse_survey_response(msg.value)
            outcomes.append("ok")
        except InvalidEvent as exc:
            outcomes.append(exc.kind)
    assert outcomes == ["ok", "invalid_field", "ok", "invalid_field"]
    keys = sorted(m.key or "" for m in got)
    assert keys == ["", "resp-1", "resp-2", "resp-6"]


def test_replay_sorts_by_event_time_and_paces(
    isolated_settings: Settings, catalogue: Catalogue, tmp_path: Path
) -> None:
    month = generate_month(MonthSpec("2025-03", 1240, 2.0, 5), catalogue)
    shuffled = month.sample(frac=1.0, random_state=1)
    path = write_events(shuffled, tmp_path / "shuffled.csv")
    start, end = "2025-03-10", "2025-03-11"
    in_range = month[
        (month["submitted_at"] >= pd.Timestamp(start, tz="UTC"))
        & (month["submitted_at"] < pd.Timestamp(end, tz="UTC"))
    ]
    speed = 86_400 / 2.5  # one day of events in 2.5 s
    sends: list[tuple[int, float]] = []
    summary = replay(
        isolated_settings,
        file=path,
        speed=speed,
        start=start,
        end=end,
        on_send=lambda i, wall: sends.append((i, wall)),
    )
    assert summary.sent == len(in_range) > 20
    # Pacing: each event leaves (t_i - t_0) / speed after the first, within scheduling jitter.
    event_s = _ms(in_range["submitted_at"]) / 1000.0
    wall = np.array([w for _, w in sends])
    expected = (event_s - event_s[0]) / speed
    actual = wall - wall[0]
    assert np.abs(actual - expected).max() < 0.3
    # not faster than the schedule (the first send's own latency shifts `actual` a little)
    assert actual[-1] >= expected[-1] - 0.3 and actual[-1] > 1.5

    got = _read_all(isolated_settings, len(in_range))
    assert sorted(m.timestamp_ms for m in got) == sorted(_ms(in_range["submitted_at"]).tolist())
    for partition in {m.partition for m in got}:
        stamps = [m.timestamp_ms for m in got if m.partition == partition]
        assert stamps == sorted(stamps)  # event-time order within every partition

    # A second replay sends the same event ids again (downstream dedupes on event_id).
    again = replay(isolated_settings, file=path, start=start, end=end, speed=0)
    assert again.sent == len(in_range)
    twice = _read_all(isolated_settings, 2 * len(in_range))
    ids = [str(parse_survey_response(m.value).event_id) for m in twice]
    assert len(ids) == 2 * len(in_range) and len(set(ids)) == len(in_range)


def test_replay_from_postgres(isolated_settings: Settings, catalogue: Catalogue) -> None:
    month = generate_month(MonthSpec("2025-04", 300, 2.0, 8), catalogue)
    now = datetime.now(UTC)
    with db.connect(isolated_settings) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO persona_labels (event_id, respondent_id, submitted_at, "
                + ", ".join(FEATURES)
                + ", persona_id, persona_name, distance, margin, is_outlier, model_version,"
                " labelled_at) VALUES (" + ", ".join(["%s"] * 20) + ")",
                [
                    (
                        r.event_id,
                        r.respondent_id,
                        r.submitted_at.to_pydatetime(),
                        *(float(getattr(r, f)) for f in FEATURES),
                        int(r.true_persona_id),
                        "p",
                        1.0,
                        1.0,
                        False,
                        0,
                        now,
                    )
                    for r in month.itertuples()
                ],
            )
        conn.commit()
    summary = replay(isolated_settings, from_db=True, start="2025-04-11", end="2025-04-21")
    expected = month[
        (month["submitted_at"] >= pd.Timestamp("2025-04-11", tz="UTC"))
        & (month["submitted_at"] < pd.Timestamp("2025-04-21", tz="UTC"))
    ]
    assert summary.sent == len(expected) > 50
    got = _read_all(isolated_settings, len(expected))
    events = [parse_survey_response(m.value) for m in got]
    assert sorted(str(e.event_id) for e in events) == sorted(expected["event_id"])
    assert all(e.true_persona_id is None for e in events)
    by_id = expected.set_index("event_id")
    for e in events[:20]:
        assert e.features() == tuple(float(by_id.loc[str(e.event_id), f]) for f in FEATURES)


def test_tail_since_a_time_and_as_json(isolated_settings: Settings, catalogue: Catalogue) -> None:
    month = generate_month(MonthSpec("2025-05", 400, 2.0, 2), catalogue)
    publish_rows(isolated_settings, month)
    since = pd.Timestamp("2025-05-20", tz="UTC")
    later = month[month["submitted_at"] >= since]
    got = list(
        consume(
            isolated_settings,
            isolated_settings.topics.responses,
            since_ms=since.value // 1_000_000,
            timeout_s=3,
        )
    )
    assert len(got) == len(later)
    assert min(m.timestamp_ms for m in got) >= since.value // 1_000_000

    cli = _cli(
        isolated_settings,
        "tail",
        "responses",
        "--json",
        "--since",
        "2025-05-20",
        "--max",
        "5",
        "--timeout",
        "10",
    )
    assert cli.returncode == 0, cli.stderr
    lines = [json.loads(line) for line in cli.stdout.splitlines()]
    assert len(lines) == 5
    assert all(line["timestamp_ms"] >= since.value // 1_000_000 for line in lines)
    assert all(line["value"]["event_id"] in set(later["event_id"]) for line in lines)

    cli = _cli(
        isolated_settings, "tail", "responses", "--from-beginning", "--max", "1", "--timeout", "10"
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.count("\n") == 1 and "resp-" in cli.stdout and "x=[" in cli.stdout


def test_full_validation_and_rate_limit(isolated_settings: Settings, catalogue: Catalogue) -> None:
    from producer.settings import ProducerSettings

    month = generate_month(MonthSpec("2025-06", 60, 2.0, 4), catalogue)
    sends: list[float] = []
    summary = publish_rows(
        isolated_settings,
        month,
        producer_settings=ProducerSettings(validate_mode="full"),
        rate=40.0,
        on_send=lambda i, wall: sends.append(wall),
    )
    assert (summary.sent, summary.failed, summary.invalid) == (60, 0, 0)
    # 60 events at 40/s: the last leaves 59/40 = 1.475 s after the first.
    assert 1.4 < sends[-1] - sends[0] < 2.5
    assert len(_read_all(isolated_settings, 60)) == 60
