"""Validate a data file's rows before anything is sent: vectorised checks, readable row errors.

Every rule of ``personas.schemas.SurveyResponse`` is checked column-wise with numpy/pandas (a UUID
``event_id``, a 1-64 character ``respondent_id``, an ISO 8601 ``submitted_at`` with a zone, ten
finite features within ±FEATURE_LIMIT, an optional non-negative integer ``true_persona_id``), plus
one the schema cannot see: an ``event_id`` repeated inside the file. Per-row pydantic costs ~20 µs
(~50k rows/s, measured); these checks cost well under 1 µs a row. The publisher then runs the
real schema on a sample of the built payloads (or on every payload with ``validate="full"``),
so the two can never silently disagree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from personas.catalogue import FEATURES
from personas.schemas import FEATURE_LIMIT

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["Events", "RowError", "validate_frame"]

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ZONE = r"(?:[zZ]|[+-]\d\d(?::?\d\d)?)$"
_MAX_RESPONDENT = 64


@dataclass(frozen=True)
class RowError:
    """One rejected row: where it is in the file and everything wrong with it."""

    line: int
    reason: str
    event_id: str | None = None

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class Events:
    """Valid rows as columns (what the publisher serialises), with their source line numbers."""

    # Text columns: a numpy array of str, or Arrow strings as validation leaves them (converting a
    # million ids to Python objects and back to Arrow for the JSON cost ~0.2 CPU-s).
    event_id: np.ndarray | pa.Array
    respondent_id: np.ndarray | pa.Array
    submitted_us: np.ndarray  # int64 microseconds since the epoch, UTC
    X: np.ndarray  # float64 (n, 10)
    true_persona_id: np.ndarray  # int64, -1 = unknown
    line: np.ndarray  # int64

    def __len__(self) -> int:
        return int(self.line.shape[0])

    def take(self, rows: np.ndarray) -> Events:
        return Events(
            event_id=_take(self.event_id, rows),
            respondent_id=_take(self.respondent_id, rows),
            submitted_us=self.submitted_us[rows],
            X=self.X[rows],
            true_persona_id=self.true_persona_id[rows],
            line=self.line[rows],
        )

    def in_time_order(self) -> Events:
        """Sorted by submitted_at; ties keep file order (a stable sort)."""
        order = np.argsort(self.submitted_us, kind="stable")
        if np.all(order[1:] > order[:-1]):
            return self
        return self.take(order)


def _take(column: np.ndarray | pa.Array, rows: np.ndarray) -> np.ndarray | pa.Array:
    if isinstance(column, np.ndarray):
        return column[rows]
    import pyarrow as pa

    return column.take(pa.array(rows, pa.int64()))


def _text(series: pd.Series) -> pd.Series:
    import pandas as pd

    return series.astype("string").fillna("").astype(pd.StringDtype("pyarrow"))


def _strings(series: pd.Series) -> tuple[pa.Array, np.ndarray | None]:
    """(the cells as an Arrow string array, "" for missing; the column's own str objects when
    they are all str already, to reuse without creating a Python object per row, else None).

    Most columns arrive as Python str (generated months) or Arrow strings (files): converting
    them once and checking them with Arrow kernels costs ~50 ns a row, where pandas' string
    methods and their conversions cost ~1 µs (docs/benchmarks/producer.md). Anything else (numbers
    in a text column) goes through pandas' own conversion to text, as before.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    own: np.ndarray | None = None
    try:
        if series.dtype == object:
            own = series.to_numpy()
            arr = pa.array(own, type=pa.string(), from_pandas=True)
        else:
            arr = pa.array(series, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        own = None
        arr = pa.array(_text(series).to_numpy(dtype=object), type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        own = None
        arr = pc.fill_null(arr, "")
    return arr, own


_UUID_DASHES = np.array([8, 13, 18, 23])
#: one odd multiplier per 4-byte word of a UUID's text, to fold it into a 64-bit key
_UUID_MIX = (np.arange(9, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C16)) | np.uint64(1)


def _plain_uuids(arr: pa.Array) -> bool | None:
    """Whether every cell is exactly a UUID (36 characters, hex digits and dashes in place) and
    no two are the same value: ``False`` = yes, all lower case; ``True`` = yes, some upper-case
    digits; ``None`` = not certain (the caller runs the general checks, which find why).

    Checked on the Arrow data as an (n, 36) byte matrix and one sort of 64-bit keys: several
    times faster than a regular expression and a hash table over a million ids. Two different
    UUIDs can share a key (odds ~n²/2⁶⁵); that only sends the file to the exact general check.
    """
    import pyarrow.compute as pc

    n = len(arr)
    if n == 0 or pc.min_max(pc.binary_length(arr)).as_py() != {"min": 36, "max": 36}:
        return None
    offsets, data = arr.buffers()[1:3]
    first = int(np.frombuffer(offsets, dtype=np.int32, count=1, offset=arr.offset * 4)[0])
    chars = np.frombuffer(data, dtype=np.uint8, count=n * 36, offset=first).reshape(n, 36)
    ok = ((chars - 48) < 10) | (((chars | 0x20) - 97) < 6)  # 0-9, a-f, A-F (uint8 wraps)
    ok[:, _UUID_DASHES] = chars[:, _UUID_DASHES] == ord("-")
    if not ok.all():
        return None
    words = (chars | 0x20).view(np.uint32).astype(np.uint64)  # case folded, 9 words a row
    keys = np.sort((words * _UUID_MIX).sum(axis=1, dtype=np.uint64))
    if np.any(keys[1:] == keys[:-1]):
        return None
    return bool(np.any((chars & 0x60) == 0x40))  # A-F among valid characters


def _same(a: pa.Array, b: pa.Array) -> bool:
    import pyarrow.compute as pc

    return bool(pc.all(pc.equal(a, b)).as_py() is not False)


def _numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, text that is not a number, missing cell); bad and missing cells become NaN."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(series)
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, np.zeros(n, bool), series.isna().to_numpy(dtype=bool)
    text = _text(series).str.strip()
    empty = (text == "").to_numpy(dtype=bool)
    try:  # fast path: every cell parses (pyarrow reads "nan" and "inf" too)
        arr = pa.array(text.to_numpy(dtype=object), pa.string())
        parsed = pc.cast(pc.if_else(pc.equal(arr, ""), None, arr), pa.float64())
        return parsed.to_numpy(zero_copy_only=False), np.zeros(n, bool), empty
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        words = text.str.lower().isin(["nan", "+nan", "-nan", "inf", "+inf", "-inf"]).to_numpy()
        return values, np.isnan(values) & ~words & ~empty, empty


def _cell(series: pd.Series, i: int) -> str:
    """One cell as text, for an error message (only ever called for rows in error)."""
    import pandas as pd

    value = series.iloc[i]
    return "" if value is None or value is pd.NA or value is pd.NaT else str(value)


Flag = Callable[[np.ndarray, Callable[[int], str]], None]


def _check_feature(series: pd.Series, name: str, flag: Flag) -> np.ndarray:
    values, not_number, empty = _numbers(series)
    flag(not_number, lambda i: f"{name}: not a number ({_cell(series, i)!r})")
    flag(empty, lambda i: f"{name}: missing")
    finite = np.isfinite(values)
    flag(~finite & ~not_number & ~empty, lambda i: f"{name}: not finite ({values[i]})")
    with np.errstate(invalid="ignore"):
        out = finite & (np.abs(values) > FEATURE_LIMIT)
    flag(out, lambda i: f"{name}: {values[i]} is outside ±{FEATURE_LIMIT:g}")
    return values


def _timestamps(series: pd.Series) -> tuple[np.ndarray, ...]:
    """(µs since epoch, missing, without zone, unparseable); rows not parsed hold 0."""
    import pandas as pd

    n = len(series)
    none = np.zeros(n, dtype=bool)
    epoch = pd.Timestamp(0, tz="UTC")
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return _us(series.fillna(epoch)), series.isna().to_numpy(), none, none
    if pd.api.types.is_datetime64_dtype(series.dtype):
        missing = series.isna().to_numpy()
        return np.zeros(n, np.int64), missing, ~missing, none
    text = _text(series).str.strip()
    missing = (text == "").to_numpy(dtype=bool)
    zoned = text.str.contains(_ZONE, regex=True).to_numpy(dtype=bool)
    parsed = pd.Series(
        pd.to_datetime(text.where(zoned, None), utc=True, format="ISO8601", errors="coerce")
    )
    bad = zoned & parsed.isna().to_numpy()
    return _us(parsed.fillna(epoch)), missing, ~zoned & ~missing, bad


def _us(ts: pd.Series) -> np.ndarray:
    values: np.ndarray = ts.dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy()
    return values


def validate_frame(df: pd.DataFrame, first_line: int = 1) -> tuple[Events, list[RowError]]:
    """Check every row of a data-file frame; returns (valid rows, errors in line order).

    ``first_line`` is the line (or row) number of the frame's first row, used in the errors.
    """
    n = len(df)
    lines = np.arange(first_line, first_line + n, dtype=np.int64)
    reasons: dict[int, list[str]] = defaultdict(list)

    def flag(mask: np.ndarray, make: Callable[[int], str]) -> None:
        for i in np.flatnonzero(mask):
            reasons[int(i)].append(make(int(i)))

    import pyarrow.compute as pc

    raw_ev, own_ev = _strings(df["event_id"])
    plain = _plain_uuids(raw_ev)
    # Every cell a bare UUID with no repeat (the usual case): nothing to strip or flag.
    event_id = raw_ev if plain is not None else pc.utf8_trim_whitespace(raw_ev)

    def ev(i: int) -> str:
        return str(event_id[i].as_py())

    if plain is None:
        uuid = pc.match_substring_regex(event_id, f"^{_UUID}$").to_numpy(zero_copy_only=False)
        flag(~uuid, lambda i: f"event_id: not a UUID ({ev(i)!r})")
    lower = raw_ev if plain is False else pc.utf8_lower(event_id)
    if plain is None and pc.count_distinct(lower).as_py() < n:  # the pandas way, first line seen
        import pandas as pd

        lowered = pd.Series(lower.to_numpy(zero_copy_only=False), dtype=object)
        dup = lowered.duplicated(keep="first").to_numpy(dtype=bool) & (lowered != "").to_numpy(
            dtype=bool
        )
        first_seen = dict(zip(lowered[~dup].tolist(), lines[~dup].tolist(), strict=True))
        flag(dup, lambda i: f"event_id: repeats line {first_seen.get(ev(i).lower())} ({ev(i)})")

    respondent, own_respondent = _strings(df["respondent_id"])
    rlen = pc.utf8_length(respondent).to_numpy(zero_copy_only=False).astype(np.int64)
    flag(rlen == 0, lambda i: "respondent_id: missing")
    flag(
        rlen > _MAX_RESPONDENT, lambda i: f"respondent_id: longer than {_MAX_RESPONDENT} characters"
    )

    raw_ts = df["submitted_at"]
    us, ts_missing, no_zone, ts_bad = _timestamps(raw_ts)
    flag(ts_missing, lambda i: "submitted_at: missing")
    flag(no_zone, lambda i: f"submitted_at: no time zone ({_cell(raw_ts, i)!r}); add Z or +00:00")
    flag(ts_bad, lambda i: f"submitted_at: not an ISO 8601 time ({_cell(raw_ts, i)!r})")
    flag(
        ~ts_bad & ~no_zone & ~ts_missing & (us < 0),
        lambda i: "submitted_at: before 1970 (Kafka timestamps start at 1970)",
    )

    X = np.empty((n, len(FEATURES)), dtype=np.float64)
    for j, name in enumerate(FEATURES):
        X[:, j] = _check_feature(df[name], name, flag)

    truth = np.full(n, -1, dtype=np.int64)
    if "true_persona_id" in df.columns:
        truth_col = df["true_persona_id"]
        values, not_number, _ = _numbers(truth_col)
        known = ~np.isnan(values)
        with np.errstate(invalid="ignore"):
            bad = not_number | (
                known & ((values < 0) | (values != np.round(values)) | ~np.isfinite(values))
            )
        flag(
            bad, lambda i: f"true_persona_id: not a non-negative integer ({_cell(truth_col, i)!r})"
        )
        ok = known & ~bad
        truth[ok] = values[ok].astype(np.int64)

    # The column's own str objects when checking changed none of them (the usual case).
    ev_out = own_ev if own_ev is not None and _same(lower, raw_ev) else lower
    resp_out = own_respondent if own_respondent is not None else respondent
    events = Events(
        event_id=ev_out,
        respondent_id=resp_out,
        submitted_us=us,
        X=X,
        true_persona_id=truth,
        line=lines,
    )
    if reasons:
        invalid = np.zeros(n, dtype=bool)
        invalid[list(reasons)] = True
        events = events.take(np.flatnonzero(~invalid))
    errors = [
        RowError(int(lines[i]), "; ".join(reasons[i]), ev(i) or None) for i in sorted(reasons)
    ]
    return events, errors
