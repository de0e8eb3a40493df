"""producer.files, producer.validation and producer.payloads: round trips and row errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from personas.catalogue import FEATURES, Catalogue
from personas.errors import InputFileError
from personas.schemas import parse_survey_response
from producer.files import read_events, write_events
from producer.generator import MonthSpec, generate_month
from producer.payloads import build_payloads
from producer.validation import validate_frame

BAD_CSV = """\
event_id,respondent_id,submitted_at,x1,x2,x3,x4,x5,x6,x7,x8,x9,x10,true_persona_id
4934b27f-1c79-4bf8-883a-210d927538c5,resp-1,2025-03-01T00:00:00.471Z,1,2,3,4,5,6,7,8,9,10,1
not-a-uuid,resp-2,2025-03-01T00:00:00.471Z,1,2,3,4,5,6,7,8,9,10,1
4934b27f-1c79-4bf8-883a-210d927538c6,,2025-03-01T00:00:00,1,2,abc,4,5,6,7,8,9,10,
4934b27f-1c79-4bf8-883a-210d927538c7,resp-4,2025-03-01T00:00:00+01:00,nan,2,,4,5,6,7,8,9,1e9,x
4934b27f-1c79-4bf8-883a-210d927538c5,resp-5,yesterday Z,1,2,3,4,5,6,7,8,9,inf,-1
4934b27f-1c79-4bf8-883a-210d927538c8,resp-6,2025-03-01 10:00:00.123456+00:00,1,2,3,4,5,6,7,8,9,10,
"""

BAD_CSV_ERRORS = [
    "line 3: event_id: not a UUID ('not-a-uuid')",
    "line 4: respondent_id: missing; submitted_at: no time zone ('2025-03-01T00:00:00'); "
    "add Z or +00:00; x3: not a number ('abc')",
    "line 5: x1: not finite (nan); x3: missing; x10: 1000000000.0 is outside ±1000; "
    "true_persona_id: not a non-negative integer ('x')",
    "line 6: event_id: repeats line 2 (4934b27f-1c79-4bf8-883a-210d927538c5); "
    "submitted_at: not an ISO 8601 time ('yesterday Z'); x10: not finite (inf); "
    "true_persona_id: not a non-negative integer ('-1')",
]


@pytest.fixture
def month(catalogue: Catalogue) -> pd.DataFrame:
    return generate_month(MonthSpec("2025-02", 400, 2.0, 9), catalogue)


@pytest.mark.parametrize("name", ["m.csv", "m.parquet", "m.csv.gz"])
def test_write_read_round_trip_is_exact(tmp_path: Path, month: pd.DataFrame, name: str) -> None:
    path = write_events(month, tmp_path / name)
    df, first_line = read_events(path)
    assert first_line == (1 if name.endswith("parquet") else 2)
    events, errors = validate_frame(df, first_line)
    assert errors == []
    assert len(events) == 400
    assert events.event_id.tolist() == month["event_id"].tolist()
    assert events.respondent_id.tolist() == month["respondent_id"].tolist()
    expected_us = month["submitted_at"].dt.as_unit("us").astype("int64").to_numpy()
    assert np.array_equal(events.submitted_us, expected_us)
    assert np.array_equal(events.X, month[list(FEATURES)].to_numpy())  # bit-exact floats
    assert events.true_persona_id.tolist() == month["true_persona_id"].tolist()


def test_csv_is_readable_text(tmp_path: Path, month: pd.DataFrame) -> None:
    path = write_events(month.head(1), tmp_path / "one.csv")
    header, row = path.read_text().splitlines()
    assert header.replace('"', "") == ",".join(
        ["event_id", "respondent_id", "submitted_at", *FEATURES, "true_persona_id"]
    )
    assert row.split(",")[2].replace('"', "").endswith("Z")


def test_bad_rows_are_reported_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV)
    df, first_line = read_events(path)
    events, errors = validate_frame(df, first_line)
    assert [str(e) for e in errors] == BAD_CSV_ERRORS
    assert events.line.tolist() == [2, 7]
    assert events.true_persona_id.tolist() == [1, -1]
    assert events.submitted_us.tolist() == [1740787200471000, 1740823200123456]


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"unknown file type '\.txt'"):
        read_events(tmp_path / "a.txt")
    with pytest.raises(InputFileError, match="no such file"):
        read_events(tmp_path / "missing.csv")
    (tmp_path / "cols.csv").write_text("event_id,x1\n1,2\n")
    with pytest.raises(InputFileError, match="missing column"):
        read_events(tmp_path / "cols.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputFileError, match="cannot read"):
        read_events(tmp_path / "empty.csv")


def test_parquet_with_naive_timestamps_is_rejected(month: pd.DataFrame, tmp_path: Path) -> None:
    naive = month.head(3).assign(submitted_at=month["submitted_at"].head(3).dt.tz_localize(None))
    naive.to_parquet(tmp_path / "naive.parquet")
    df, first_line = read_events(tmp_path / "naive.parquet")
    events, errors = validate_frame(df, first_line)
    assert len(events) == 0
    assert [e.line for e in errors] == [1, 2, 3]
    assert all("submitted_at: no time zone" in e.reason for e in errors)


def test_payloads_match_the_schema(month: pd.DataFrame) -> None:
    events, _ = validate_frame(month)
    payloads = build_payloads(events)
    assert len(payloads) == 400
    for i in range(0, 400, 7):
        msg = parse_survey_response(payloads[i])
        row = month.iloc[i]
        assert str(msg.event_id) == row["event_id"]
        assert msg.respondent_id == row["respondent_id"]
        assert msg.submitted_at == row["submitted_at"].to_pydatetime()
        assert msg.features() == tuple(float(row[f]) for f in FEATURES)
        assert msg.true_persona_id == row["true_persona_id"]
    assert payloads[0].startswith(b'{"schema_version":1,"event_id":"')


def test_payloads_escape_odd_respondent_ids(month: pd.DataFrame) -> None:
    odd = month.head(3).copy()
    odd["respondent_id"] = ['quo"te', "back\\slash", "tab\there"]
    odd["true_persona_id"] = [1, 2, 0]
    events, errors = validate_frame(odd)
    assert errors == []
    payloads = build_payloads(events)
    assert [parse_survey_response(p).respondent_id for p in payloads] == [
        'quo"te',
        "back\\slash",
        "tab\there",
    ]


def test_payloads_keep_microseconds_and_unknown_truth(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV)
    events, _ = validate_frame(*read_events(path))
    second = parse_survey_response(build_payloads(events)[1])
    assert second.submitted_at == pd.Timestamp("2025-03-01T10:00:00.123456Z").to_pydatetime()
    assert second.true_persona_id is None
