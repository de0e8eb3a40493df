"""Reading and writing survey data files: CSV or Parquet, chosen by the file's extension.

Columns (the data-file contract): ``event_id`` (UUID text), ``respondent_id`` (text),
``submitted_at`` (ISO 8601 with zone; written in UTC as ``2025-03-01T12:34:56.789Z``),
``x1`` … ``x10`` (float), ``true_persona_id`` (int, optional, empty = unknown).

CSV is read with every column as text so that a bad cell becomes a reported row error with its
line number (``producer.validation``) instead of failing the whole file. Both directions go through
pyarrow, which writes and parses a million rows in about a second, where pandas' CSV writer takes
several.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from personas.catalogue import FEATURES
from personas.errors import InputFileError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "REQUIRED_COLUMNS", "file_format", "read_events", "write_events"]

REQUIRED_COLUMNS: tuple[str, ...] = ("event_id", "respondent_id", "submitted_at", *FEATURES)
COLUMNS: tuple[str, ...] = (*REQUIRED_COLUMNS, "true_persona_id")

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def file_format(path: Path) -> str:
    """``csv`` or ``parquet`` from the extension (``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in {".gz", ".bz2", ".zst"} and len(suffixes) > 1:
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise InputFileError(
            f"{path}: unknown file type {path.suffix or '(none)'!r}; use .csv or .parquet"
        )
    return fmt


def write_events(df: pd.DataFrame, path: Path) -> Path:
    """Write an events DataFrame (``submitted_at`` as a UTC datetime column) to CSV or Parquet."""
    import numpy as np
    import pyarrow as pa

    fmt = file_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [c for c in COLUMNS if c in df.columns]
    table = pa.Table.from_pandas(df[columns], preserve_index=False)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        ts = table.column("submitted_at").cast(pa.timestamp("ms", tz="UTC"))
        table = table.set_column(columns.index("submitted_at"), "submitted_at", ts)
        pq.write_table(table, path, compression="zstd")
    else:
        import pyarrow.csv as pcsv

        ms = df["submitted_at"].to_numpy(dtype="datetime64[ms]")
        text = pa.array(np.datetime_as_string(ms, unit="ms", timezone="UTC"))
        table = table.set_column(columns.index("submitted_at"), "submitted_at", text)
        options = pcsv.WriteOptions(quoting_style="needed")
        with (
            pa.CompressedOutputStream(path, "gzip")
            if path.suffix == ".gz"
            else open(path, "wb") as sink
        ):
            pcsv.write_csv(table, sink, write_options=options)
    return path


def read_events(path: Path) -> tuple[pd.DataFrame, int]:
    """Read a data file; returns (frame, line number of its first row).

    CSV columns are all text (validation converts them and reports bad cells); the first data
    row of a CSV is line 2 (line 1 is the header); Parquet rows are numbered from 1.
    """
    fmt = file_format(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    import pyarrow as pa

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            df = pq.read_table(path).to_pandas()
            first_line = 1
        else:
            import pyarrow.csv as pcsv

            header = _csv_header(path)
            convert = pcsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            )
            table = pcsv.read_csv(path, convert_options=convert)
            df = table.to_pandas()
            first_line = 2
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFileError(f"{path}: cannot read as {fmt}: {exc}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputFileError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}"
        )
    return df, first_line


def _csv_header(path: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    # Read only the first block to learn the column names (all later read as text).
    reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 16))
    names: list[str] = reader.schema.names
    del reader
    if not names:
        raise pa.ArrowInvalid("empty file")
    return names
