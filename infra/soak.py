"""`persona soak` / `make soak`: the whole loop at a steady rate for a bounded time, with faults
injected at random instants, ending with an accounting of what held.

Faults: the stream worker, the monitor and the trainer SIGKILLed (and restarted, as a supervisor
would), the Kafka broker SIGKILLed and restarted, PostgreSQL unreachable for ``pg_outage_s``. The
broker is the soak's own single-node Kafka (in ``out/soak/<run>/kafka``, on free ports), so
killing it disturbs nothing else; PostgreSQL and MLflow are the configured ones, reached through a
TCP link the soak cuts (only the soak's services lose PostgreSQL). Its topics, schema and model
are its own (``-soak-<run>`` names) and are dropped at the end unless ``--keep``.

The accounting: events published = rows in PostgreSQL = distinct labels on the topic; every
closed window reported exactly once; one retrain command per drift episode, each with one final
ledger row; RSS of each service at start and end. Exit 1 if anything did not hold.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from infra.demo.services import ChildService, persona_argv
from infra.sampling import rss_mib
from infra.stack.process import wait_until
from personas.settings import Settings

__all__ = ["SoakOptions", "SoakResult", "drift_episodes", "run_soak", "soak_data"]

log = logging.getLogger(__name__)

FAULTS = ("stream", "monitor", "trainer", "broker", "postgres")
WEEK = timedelta(days=7)
ORIGIN = datetime(2024, 1, 1, tzinfo=UTC)  # the monitor's default window origin (a Monday)


@dataclass(frozen=True)
class SoakOptions:
    minutes: float = 20.0
    rate: float = 50.0  # events per second, steady
    seed: int = 7
    out_dir: Path = Path("out/soak")
    pg_outage_s: float = 30.0
    rounds: int | None = None  # times each fault is injected; default one per 10 minutes
    keep: bool = False


@dataclass
class SoakResult:
    run: str
    started_at: str
    minutes: float
    rate: float
    events: int = 0
    rows: int = 0
    distinct_rows: int = 0
    distinct_labels: int = 0
    windows_expected: int = 0
    windows_reported: int = 0
    windows_twice: dict[str, int] = field(default_factory=dict)
    drift_episodes: int = 0
    retrain_commands: int = 0
    commands_final: int = 0
    versions: int = 0
    faults: list[dict[str, Any]] = field(default_factory=list)
    rss_mib: dict[str, dict[str, float]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def held(self) -> bool:
        return all(self.checks.values())


def _rss_mib(service: ChildService) -> float:
    return rss_mib(None if service.process is None else service.process.pid)


def soak_data(options: SoakOptions, folder: Path) -> tuple[Path, Path, int, int]:
    """(reference file, soak file, events, expected windows): months of steady std-2 noise with
    std-3.1 months between them, and a sentinel a week after the end that closes the last window."""
    import pandas as pd

    from personas.catalogue import load_vendor_catalogue
    from producer.generator import MonthSpec, generate_month

    catalogue = load_vendor_catalogue()
    folder.mkdir(parents=True, exist_ok=True)
    reference = folder / "reference.parquet"
    generate_month(MonthSpec("2024-12", 1500, 2.0, options.seed), catalogue).to_parquet(reference)
    total = max(1000, int(options.minutes * 60 * options.rate))
    months = max(3, round(total / 8000))
    stds = [2.0, 3.1, 2.0, 2.0, 3.1, 2.0]
    frames = []
    for i in range(months):
        month = f"{2025 + i // 12}-{i % 12 + 1:02d}"
        n = total // months + (1 if i < total % months else 0)
        frames.append(
            generate_month(MonthSpec(month, n, stds[i % len(stds)], options.seed + i), catalogue)
        )
    events = pd.concat(frames, ignore_index=True)
    last = events["submitted_at"].max().to_pydatetime()
    weeks = {
        ORIGIN + ((t - ORIGIN) // WEEK) * WEEK for t in events["submitted_at"].dt.to_pydatetime()
    }
    sentinel = events.iloc[[-1]].copy()
    sentinel["event_id"] = str(uuid.uuid4())
    sentinel["respondent_id"] = "soak-sentinel"
    sentinel["submitted_at"] = pd.Timestamp(last + 2 * WEEK)
    events = pd.concat([events, sentinel], ignore_index=True)
    path = folder / "soak.parquet"
    events.to_parquet(path)
    return reference, path, len(events), len(weeks)


class _Soak:
    """One run: its private broker, the PostgreSQL link, its namespace and its services."""

    def __init__(self, base: Settings, options: SoakOptions) -> None:
        from pydantic import SecretStr

        from infra.stack.kafka import KafkaService
        from infra.stack.layout import Layout
        from infra.stack.process import server_port
        from infra.stack.tcp_proxy import TcpProxy
        from personas.settings import TopicNames

        self.options = options
        self.run = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.folder = (options.out_dir / self.run).resolve()
        port, controller = server_port(), server_port()
        broker_settings = base.model_copy(
            update={
                "kafka_host": "127.0.0.1",
                "kafka_port": port,
                "kafka_controller_port": controller,
                "kafka_bootstrap_servers": f"127.0.0.1:{port}",
                "kafka_security_protocol": "PLAINTEXT",
                "kafka_partitions": 2,
            }
        )
        self.broker = KafkaService(
            broker_settings, Layout(root=self.folder / "kafka", cache=base.cache_dir.resolve())
        )
        self.pg_link = TcpProxy((base.pg_host, base.pg_port))
        unique = f"soak-{uuid.uuid4().hex[:8]}"
        self.settings = broker_settings.model_copy(
            update={
                "pg_host": "127.0.0.1",
                "pg_port": self.pg_link.port,
                "pg_url": SecretStr(""),
                "topics": TopicNames.private(unique),
                "pg_schema": unique.replace("-", "_"),
                "model_name": f"persona-model-{unique}",
            }
        )
        self.services: dict[str, ChildService] = {}
        self.restarts: Counter[str] = Counter()

    def env(self, **extra: str) -> dict[str, str]:
        from personas.settings import settings_env

        env = settings_env(self.settings)
        env.update(extra)
        return env

    def persona(self, *args: str) -> None:
        import subprocess

        result = subprocess.run(
            persona_argv(*args), env=self.env(), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            from personas.errors import PersonaError

            raise PersonaError(f"persona {' '.join(args[:2])} failed: {result.stderr[-1500:]}")

    def start_services(self) -> None:
        from infra.stack.process import free_port

        logs = self.folder / "logs"
        m = self.settings.model_name
        self.services = {
            "stream": ChildService(
                "stream",
                persona_argv("stream", "--web-port", str(free_port())),
                logs / "stream.log",
                self.env(PERSONA_STREAM_STATE_DIR=str(self.folder / "stream-state")),
            ),
            "monitor": ChildService(
                "monitor",
                persona_argv("monitor", "--window", "7d", "--group-id", f"persona-monitor-{m}"),
                logs / "monitor.log",
                self.env(PERSONA_MONITOR_REPORTS="never"),
            ),
            "trainer": ChildService(
                "trainer",
                persona_argv("trainer"),
                logs / "trainer.log",
                self.env(PERSONA_TRAINER_GROUP_ID=f"persona-trainer-{m}"),
            ),
        }
        for service in self.services.values():
            service.start()
        self.wait_ready()

    def wait_ready(self) -> None:
        stream = self.services["stream"]
        stream.wait_for_log("persona stream worker ready", 240)

    def inject(self, fault: str) -> dict[str, Any]:
        t0 = time.monotonic()
        if fault in self.services:
            service = self.services[fault]
            service.kill()
            self.restarts[fault] += 1
            service.start(append=True)
            what = f"{fault} SIGKILLed and restarted"
        elif fault == "broker":
            self.broker.kill()
            self.broker.start()
            what = "Kafka broker SIGKILLed and restarted"
        else:
            self.pg_link.down()
            time.sleep(self.options.pg_outage_s)  # the outage itself: pacing, not synchronisation
            self.pg_link.up()
            what = f"PostgreSQL unreachable for {self.options.pg_outage_s:.0f} s"
        return {"fault": fault, "what": what, "seconds": round(time.monotonic() - t0, 1)}


def _settled(soak: _Soak, expected_windows: int) -> bool:
    """Every window published, and every retrain command on the topic decided by the trainer (a
    command not yet received has no ledger row at all, so 'none in progress' is not enough)."""
    from personas import db
    from personas.kafka import read_to_end

    with db.connect(soak.settings, autocommit=True) as conn:
        reports = conn.execute("SELECT count(published_at) FROM drift_reports").fetchone()
        decided = conn.execute(
            "SELECT count(*) FROM trainer_commands WHERE status <> 'received'"
        ).fetchone()
    assert reports is not None and decided is not None
    if int(reports[0]) < expected_windows:
        return False
    commands = {m.value() for m in read_to_end(soak.settings, soak.settings.topics.retrain)}
    return int(decided[0]) >= len(commands)


def run_soak(
    base: Settings, options: SoakOptions, say: Callable[[str], None] = print
) -> SoakResult:
    """Run the soak; the result (also written as out/soak/<run>/result.json beside the logs)."""
    from personas import db, registry
    from personas.kafka import ensure_topics, topic_specs

    # Name a dead dependency in one line before anything starts (the soak brings its own broker).
    db.check_postgres(base)
    registry.champion_version(base)  # ServiceUnavailable naming MLflow if it does not answer
    soak = _Soak(base, options)
    result = SoakResult(
        soak.run, datetime.now(UTC).isoformat(timespec="seconds"), options.minutes, options.rate
    )
    say(
        f"soak {soak.run}: {options.minutes:g} min at {options.rate:g} events/s; files in {soak.folder}"
    )
    reference, data, result.events, result.windows_expected = soak_data(
        options, soak.folder / "data"
    )
    rng = random.Random(options.seed)
    rounds = options.rounds or max(1, round(options.minutes / 10))
    duration = options.minutes * 60
    plan = sorted(
        (rng.uniform(0.08, 0.85) * duration, fault) for fault in FAULTS for _ in range(rounds)
    )
    replay: ChildService | None = None
    try:
        soak.broker.start()
        soak.pg_link.up()
        ensure_topics(soak.settings, topic_specs(soak.settings))
        db.apply_migrations(soak.settings)
        soak.persona("train", "bootstrap", "--reference", str(reference))
        soak.start_services()
        rss_start: dict[str, float] = {}
        say(
            f"services up; replaying {result.events} events; faults at {[f'{t:.0f}s {f}' for t, f in plan]}"
        )
        replay = ChildService(
            "replay",
            persona_argv("replay", "--file", str(data), "--rate", str(options.rate), "--quiet"),
            soak.folder / "logs" / "replay.log",
            soak.env(),
        ).start()
        t0 = time.monotonic()
        for at, fault in plan:
            while time.monotonic() - t0 < at and replay.alive():
                time.sleep(0.5)
            if not replay.alive():
                break
            if not rss_start:  # warmed up (libraries loaded, first batches done), not yet hit
                rss_start = {name: _rss_mib(s) for name, s in soak.services.items()}
            elapsed = time.monotonic() - t0
            record = soak.inject(fault)
            say(f"t={elapsed:5.0f}s  {record['what']}")
            record["at_s"] = round(elapsed, 1)
            result.faults.append(record)
        code = replay.wait_exit(max(600.0, duration * 2))
        result.checks["replay delivered every event"] = code == 0
        say(
            f"replay finished (exit {code}) after {time.monotonic() - t0:.0f} s; waiting for the loop to settle"
        )
        wait_until(lambda: db.label_counts(soak.settings)[0] >= result.events, 600)

        wait_until(lambda: _settled(soak, result.windows_expected), 600, 1.0)
        result.rss_mib = {
            name: {"start": round(rss_start.get(name, 0.0), 1), "end": round(_rss_mib(s), 1)}
            for name, s in soak.services.items()
        }
        result.restarts = dict(soak.restarts)
        _account(soak, result)
    finally:
        if replay is not None:
            replay.stop()
        for service in soak.services.values():
            service.stop()
        soak.pg_link.up()
        if not options.keep:
            _drop(soak)
        soak.broker.stop()
        soak.pg_link.down()
    _write(soak.folder, result)
    for name, rss in result.rss_mib.items():
        restarts = result.restarts.get(name, 0)
        say(
            f"rss     {name:<8} {rss['start']:7.1f} MiB → {rss['end']:7.1f} MiB ({restarts} restarts)"
        )
    for name, ok in result.checks.items():
        say(f"{'held  ' if ok else 'FAILED'}  {name}")
    return result


def _account(soak: _Soak, result: SoakResult) -> None:
    from personas import db
    from personas.kafka import read_to_end

    s = soak.settings
    result.rows, result.distinct_rows = db.label_counts(s)
    labels = read_to_end(s, s.topics.labels)
    result.distinct_labels = len({json.loads(m.value())["event_id"] for m in labels})
    reports = [json.loads(m.value()) for m in read_to_end(s, s.topics.alerts)]
    drift_reports = [r for r in reports if r.get("kind") == "drift_report"]
    per_window = Counter(r["window_id"] for r in drift_reports)
    result.windows_reported = len(per_window)
    result.windows_twice = {w: n for w, n in per_window.items() if n > 1}
    statuses = [r["status"] for r in sorted(drift_reports, key=lambda r: r["window_start"])]
    episodes = drift_episodes(statuses)
    result.drift_episodes = episodes
    commands = [json.loads(m.value()) for m in read_to_end(s, s.topics.retrain)]
    ids = [c["command_id"] for c in commands]
    result.retrain_commands = len(ids)
    with db.connect(s, autocommit=True) as conn:
        final = conn.execute(
            "SELECT count(*) FROM trainer_commands WHERE status <> 'received'"
        ).fetchone()
    result.commands_final = 0 if final is None else int(final[0])
    from personas import registry

    result.versions = len(registry.client(s).search_model_versions(f"name = '{s.model_name}'"))
    result.checks.update(
        {
            "events published = rows in PostgreSQL": result.rows == result.events,
            "one row per event": result.rows == result.distinct_rows,
            "every event labelled on the topic": result.distinct_labels == result.events,
            "every window reported": result.windows_reported == result.windows_expected,
            "no window reported twice": not result.windows_twice,
            "no retrain command twice": len(ids) == len(set(ids)),
            "at most one retrain command per episode": len(ids) <= max(1, episodes),
            "every command decided once": result.commands_final == len(ids),
        }
    )


def drift_episodes(statuses: list[str]) -> int:
    """Runs of consecutive warning/drift windows (in window order): each may earn one command."""
    episodes, inside = 0, False
    for status in statuses:
        failing = status in ("warning", "drift")
        if failing and not inside:
            episodes += 1
        inside = failing
    return episodes


def _drop(soak: _Soak) -> None:
    from infra.demo.runner import drop_namespace

    # The topics live on the soak's own broker, which goes with its folder.
    drop_namespace(soak.settings, topics=False)


def _write(folder: Path, result: SoakResult) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    document = asdict(result) | {"held": result.held}
    (folder / "result.json").write_text(json.dumps(document, indent=2) + "\n")
