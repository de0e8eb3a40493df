"""bench/replay_loop.py runs the whole loop at a small size and its accounting is honest.

20,000 events in January 2025 (one month file): the monitor's 7-day windows from its Monday
origin that the data closes are the weeks starting 2024-12-30, 2025-01-06, -13 and -20 (the week
of 2025-01-27 ends on 2025-02-03, after the newest event minus the hour of lateness). The test
checks the figures in the result file itself, not only the script's verdict, so a worker that
loses or duplicates rows fails it, and that the run leaves none of its topics, schema or model.
Takes ≈ 35 s on the 2-core machine (the stream worker's start-up is most of it).
Never its speed: the machine is shared.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from personas import db
from personas.kafka import admin_config
from personas.settings import Settings

REPO = Path(__file__).resolve().parents[3]
N = 20_000


@pytest.mark.timeout(240)
def test_replay_loop_accounts_for_every_event_and_reports_rss(stack_settings: Settings) -> None:
    from confluent_kafka.admin import AdminClient
    from mlflow.exceptions import MlflowException

    from personas.registry import client

    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "replay_loop.py"),
            *("--events", str(N), "--months", "1", "--stall-timeout", "60"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=230,
    )
    out = done.stdout + done.stderr
    found = re.search(r"^result: (\S+\.json)$", done.stdout, re.MULTILINE)
    assert found, out[-3000:]
    result = json.loads(Path(found.group(1)).read_text())
    assert done.returncode == 0, out[-3000:]

    assert result["held"] is True and all(result["checks"].values()), result["checks"]
    counts = result["counts"]
    assert counts["published"] == N
    assert counts["rows"] == counts["distinct_rows"] == N
    assert counts["labels_on_topic"] == N
    assert counts["monitor_labels"] >= N
    # Labels the monitor dropped as late are a known finding (docs/benchmarks/replay_loop.md),
    # reported as a count and a note, not hidden.
    assert (counts["monitor_late"] > 0) == bool(result["notes"])
    assert result["windows_expected"] == 4
    assert counts["expected_windows_decided"] == counts["windows_decided"] == 4

    stages = result["stage_s"]
    assert stages["publish done"] > 0 and stages["labels all in PostgreSQL"] > 0
    assert stages["labels all in PostgreSQL"] <= stages["last verdict"]
    assert result["rates"]["end to end"] > 0 and result["rates"]["stream worker"] > 0
    for service in ("publisher", "stream", "monitor", "bench"):
        rss = result["rss_mib"][service]
        assert 0 < rss["start"] <= rss["peak"] and 0 < rss["end"] <= rss["peak"], (service, rss)
        assert isinstance(rss["flat"], bool)
        assert result["cpu_s_per_million"][service] > 0

    namespace = result["namespace"]
    left = [
        t
        for t in AdminClient(admin_config(stack_settings)).list_topics(timeout=10).topics
        if namespace in t
    ]
    assert not left, f"topics left behind: {left}"
    with db.connect(stack_settings, autocommit=True) as conn:
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = %s", (namespace,)
        ).fetchall()
    assert not schemas, f"schema left behind: {schemas}"
    with pytest.raises(MlflowException):
        client(stack_settings).get_registered_model(f"persona-model-{namespace}")
