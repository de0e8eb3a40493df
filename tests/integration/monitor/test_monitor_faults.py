"""The monitor killed or cut off from its services, through real `persona monitor` processes.

Whatever happens, consumers of drift-alerts see exactly one report per window id, the drift
episode yields exactly one retrain command, and every window is judged (none skipped because a
service blinked). The crash instants that matter most (a report sent but not yet recorded) are
hit with failpoints (personas/failpoints.py): the process SIGKILLs itself there.
"""

from __future__ import annotations

import signal
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fault_tools import TcpProxy, wait_until
from monitor_helpers import (
    EXPECTED_STATUSES,
    MONTHS,
    monitor_env,
    month,
    publish,
    published_windows,
    read,
    register_champion,
)

from infra.demo.services import ChildService, persona_argv
from personas.model import CentroidModel
from personas.schemas import DriftReport, RetrainCommand
from personas.settings import Settings

WINDOWS = len(EXPECTED_STATUSES)  # 14 weeks, Jan 27 … Apr 28


@pytest.fixture
def champion(isolated_settings: Settings, vendor_model: CentroidModel) -> CentroidModel:
    """The vendor model registered as champion with January (std 2) as its reference."""
    from personas import registry

    january = month(np.random.default_rng(202501), vendor_model.centroids, 500, 2.0)
    return registry.load_version(
        isolated_settings, register_champion(isolated_settings, vendor_model, january)
    )


@pytest.fixture
def monitors(isolated_settings: Settings, tmp_path: Path) -> Iterator[Callable[..., ChildService]]:
    """Start `persona monitor` processes of one consumer group; all are stopped afterwards."""
    group = f"persona-monitor-f-{uuid.uuid4().hex[:8]}"
    started: list[ChildService] = []

    def start(settings: Settings | None = None, **extra: str) -> ChildService:
        env = monitor_env(settings or isolated_settings, group, **extra)
        process = ChildService("monitor", persona_argv("monitor"), tmp_path / "monitor.log", env)
        process.start(append=True)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def assert_each_window_once(settings: Settings) -> None:
    """One report per window id, in order, with the seeded statuses; one retrain command; every
    row published."""
    raw = read(settings, settings.topics.alerts, WINDOWS, timeout=60)
    reports = [DriftReport.model_validate_json(v) for v in raw]
    twice = {w: n for w, n in Counter(r.window_id for r in reports).items() if n > 1}
    assert not twice, f"windows reported more than once: {twice}"
    assert len(reports) == WINDOWS
    ordered = sorted(reports, key=lambda r: r.window_start)
    assert [r.status for r in ordered] == EXPECTED_STATUSES
    commands = [
        RetrainCommand.model_validate_json(v) for v in read(settings, settings.topics.retrain, 1, 5)
    ]
    assert len(commands) == 1, f"{len(commands)} retrain commands for one episode"
    assert published_windows(settings) == (WINDOWS, WINDOWS)


def all_published(settings: Settings) -> Callable[[], bool]:
    return lambda: published_windows(settings)[1] >= WINDOWS


def test_killed_at_each_instant_between_recording_and_publishing_reports_each_window_once(
    isolated_settings: Settings,
    champion: CentroidModel,
    monitors: Callable[..., ChildService],
) -> None:
    """Three SIGKILLs in a row, each restart finishing what the last one left: after a window's
    row is committed but before anything is sent (after_claim); after its report is acknowledged
    but before that is recorded (after_publish, hit by the restart's own recovery); and the same
    for the window that sends the retrain command. Nothing is sent twice."""
    s = isolated_settings
    publish(s, champion, MONTHS)
    for point in ("monitor.after_claim", "monitor.after_publish", "monitor.after_retrain_command"):
        crashed = monitors(PERSONA_FAILPOINTS=point)
        assert crashed.wait_exit(240) == -signal.SIGKILL, f"{point}\n{crashed.output()[-3000:]}"
        rows, done = published_windows(s)
        assert rows == done + 1, f"{point}: one window left unpublished"

    restarted = monitors()
    wait_until(restarted, all_published(s), 240, f"{WINDOWS} published windows")
    assert restarted.stop() == 0
    assert_each_window_once(s)
    assert "found already on Kafka after a restart" in restarted.output()


def test_sigkill_mid_stream_reports_each_window_once(
    isolated_settings: Settings,
    champion: CentroidModel,
    monitors: Callable[..., ChildService],
) -> None:
    """Killed while windows are open and reports in flight: every window once, with the same
    verdicts (the open windows' events were not committed, so they are read again)."""
    s = isolated_settings
    publish(s, champion, MONTHS)
    first = monitors()
    wait_until(first, lambda: published_windows(s)[0] >= 5, 240, "5 windows")
    first.kill()
    second = monitors()
    wait_until(second, all_published(s), 240, f"{WINDOWS} windows")
    assert second.stop() == 0
    assert_each_window_once(s)


def test_postgres_then_mlflow_down_at_window_close_skips_and_doubles_nothing(
    isolated_settings: Settings,
    champion: CentroidModel,
    monitors: Callable[..., ChildService],
) -> None:
    """PostgreSQL goes away while windows close, then MLflow (the champion's reference) while
    PostgreSQL is back: the monitor retries each window until both answer; none skipped, none
    doubled."""
    from urllib.parse import urlsplit

    s = isolated_settings
    tracking = urlsplit(s.tracking_uri)
    pg, mlflow = (
        TcpProxy((s.pg_host, s.pg_port)),
        TcpProxy((tracking.hostname or "", tracking.port or 80)),
    )
    pg.up()
    mlflow.up()
    through_proxies = s.model_copy(
        update={
            "pg_host": "127.0.0.1",
            "pg_port": pg.port,
            "pg_url": type(s.pg_url)(""),
            "mlflow_tracking_uri": f"http://127.0.0.1:{mlflow.port}",
        }
    )
    times = publish(s, champion, MONTHS[:1], sentinel=False)  # February: 4 windows close
    running = monitors(through_proxies)
    wait_until(running, lambda: published_windows(s)[1] >= 4, 240, "4 windows")

    pg.down()
    publish(s, champion, MONTHS[1:], first_id=len(times))  # March, April, the sentinel
    wait_until(running, lambda: "retrying in" in running.output(), 240, "a retry")
    assert published_windows(s)[0] == 4, "a window was decided while PostgreSQL was away"

    mlflow.down()
    pg.up()
    wait_until(running, lambda: "MLflow at" in running.output(), 240, "an MLflow retry")
    mlflow.up()
    wait_until(running, all_published(s), 300, f"{WINDOWS} windows")
    assert running.alive()
    assert running.stop() == 0
    assert_each_window_once(s)
