"""SurveyResponse JSON for a whole batch of rows at once, without a pydantic object per row.

The output parses to exactly what ``SurveyResponse.model_validate(row).model_dump_json()`` does
(same keys and order; floats as shortest round-trip text, timestamps as ISO 8601 UTC with ``Z``).
It is built column-wise in pyarrow's C++ kernels: float → text casts and one element-wise join.
Measured on our 2-core machine: ~1M rows/s for the join and ~2M floats/s for the casts, against
~70k rows/s for Python %-formatting and ~80k rows/s for a pydantic round trip per row. Rows
reaching this module have passed ``producer.validation``; a sample is re-checked with the real
schema by the publisher.
"""

from __future__ import annotations

import json

import numpy as np

from personas.catalogue import FEATURES
from producer.validation import Events

__all__ = ["build_payloads", "format_timestamps"]


def format_timestamps(us: np.ndarray) -> np.ndarray:
    """µs since the epoch → ISO 8601 UTC text, millisecond precision unless finer is needed."""
    unit = "ms" if not np.any(us % 1000) else "us"
    text: np.ndarray = np.datetime_as_string(  # type: ignore[call-overload]
        us.astype("datetime64[us]"), unit=unit, timezone="UTC"
    )
    return text


def build_payloads(events: Events, start: int = 0, stop: int | None = None) -> list[str]:
    """JSON texts of rows ``start:stop`` of ``events`` (valid rows only)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    stop = len(events) if stop is None else stop
    if stop <= start:
        return []
    rows = slice(start, stop)
    respondent = pa.array(events.respondent_id[rows], pa.string())
    escape = pc.match_substring_regex(respondent, r'["\\\x00-\x1f]')
    respondent_json = pc.binary_join_element_wise('"', respondent, '"', "")
    if pc.any(escape).as_py():  # rare: quote, backslash or control character in an id
        texts = respondent_json.to_pylist()
        for i in np.flatnonzero(escape.to_numpy(zero_copy_only=False)):
            texts[i] = json.dumps(events.respondent_id[start + i], ensure_ascii=False)
        respondent_json = pa.array(texts, pa.string())
    parts: list[object] = [
        '{"schema_version":1,"event_id":"',
        pa.array(events.event_id[rows], pa.string()),
        '","respondent_id":',
        respondent_json,
        ',"submitted_at":"',
        pa.array(format_timestamps(events.submitted_us[rows]), pa.string()),
        '"',
    ]
    X = events.X[rows]
    for j, name in enumerate(FEATURES):
        parts.append(f',"{name}":')
        parts.append(pc.cast(pa.array(X[:, j]), pa.string()))
    truth = events.true_persona_id[rows]
    truth_text = pc.cast(pa.array(truth), pa.string())
    truth_text = pc.if_else(pa.array(truth < 0), "null", truth_text)
    parts += [',"true_persona_id":', truth_text, "}"]
    joined = pc.binary_join_element_wise(*parts, "")
    out: list[str] = joined.to_pylist()
    return out
