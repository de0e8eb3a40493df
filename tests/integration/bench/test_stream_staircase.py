"""bench/stream_staircase.py runs end to end at a tiny size, so it cannot rot unnoticed.

Only that it finishes, prints every step and peer with a figure (the Quix Streams peer too: `make
test` builds its venv, `make bench-quix`), prints the ratios, and leaves none of its topics or
schemas behind. Never its speed: the machine is shared.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from personas import db
from personas.kafka import admin_config
from personas.settings import Settings

REPO = Path(__file__).resolve().parents[3]
STEPS = (
    "1 consume only",
    "2 + decode/validate",
    "3 + label",
    "4 + encode and produce",
    "5 + PostgreSQL",
    "6 + offsets after durability",
    "persona stream (batch engine)",
    "persona stream --engine agent",
)
QUIX = ("Quix Streams, no PostgreSQL", "Quix Streams + PostgreSQLSink")


@pytest.mark.timeout(900)
def test_staircase_runs_end_to_end_and_prints_every_step(stack_settings: Settings) -> None:
    from confluent_kafka.admin import AdminClient

    assert (REPO / ".venv-quix" / "bin" / "python").exists(), "no Quix venv: `make bench-quix`"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "stream_staircase.py"), "--events", "2000"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=880,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    for step in (*STEPS, *QUIX):
        row = next((line for title, line in rows.items() if title.startswith(step)), None)
        assert row is not None, f"no row for {step!r} in:\n{out}"
        figure = row.split("|")[2].strip()
        assert re.fullmatch(r"[\d,]+", figure), row
    for ratio in ("best ceiling without PostgreSQL", "Quix Streams", "agent engine"):
        assert re.search(rf"worker / {ratio}.*= ", out), out

    tag = re.search(r"survey-responses-bench-stair-([0-9a-f]+)", out)
    assert tag, out
    left = [
        t
        for t in AdminClient(admin_config(stack_settings)).list_topics(timeout=10).topics
        if tag.group(1) in t
    ]
    assert not left, f"topics left behind: {left}"
    with db.connect(stack_settings, autocommit=True) as conn:
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
            (f"bench_stair_{tag.group(1)}%",),
        ).fetchall()
    assert not schemas, f"schemas left behind: {schemas}"
