"""The whole loop on a long replay, timed end to end, with the RSS of every service (issue 14).

    .venv/bin/python bench/replay_loop.py [--events 1000000] [--months M] [--trainer] [--keep]

What runs, all as users run it and all in a namespace of the run's own (``demo_settings`` with
``bench_loop_<tag>``: topics ``<name>-bench_loop_<tag>``, schema ``bench_loop_<tag>``, model
``persona-model-bench_loop_<tag>``, consumer groups and ports of its own), so no user's topics,
tables or model are touched:

1. N events generated with ``producer.generator.generate_month``, one calendar month per file
   (M months from 2025-01, default max(3, ceil(N / 1M)), std 2.0, seed 7 + month): only one
   month is in memory at a time, so 10M events need the memory of 1M. Not timed.
2. ``persona train bootstrap`` (vendor centroids as champion), then ``persona stream`` (default
   batch engine), ``persona monitor`` (``--window 7d``) and, with ``--trainer``, ``persona
   trainer``, each a child process with its log in out/bench/replay_loop-<stamp>/logs.
3. Timed from the start of the first publish: ``persona publish <month>.parquet`` once per month,
   one after the other (a user publishing monthly files; the publisher is a service whose RSS is
   sampled like the others), until (a) every publish exited 0, (b) ``persona_labels`` holds N rows
   and (c) ``drift_reports`` holds every window the data closes, published (``published_at``).
   A window closes when the watermark (newest event time − the monitor's allowed lateness) passes
   its end, so the expected windows are those with events whose end is at or before that.
4. Stage times come from the database clocks where one exists (``max(labelled_at)``,
   ``max(published_at)``), so they do not carry the 1 s polling; the worker's and the monitor's
   events/s come from their own /metrics counters (``persona_stream_rows_inserted``,
   ``persona_monitor_labels_consumed``), N over the span from the first sample that moved to the
   first that reached N (±1 s per end).
5. Accounting: events on the responses topic (watermark offsets) = N = rows in PostgreSQL =
   distinct event ids there = labels on the labels topic; windows decided = expected, none late.
   Exit 1 if any of it failed (or, with ``--require-flat``, if any RSS was not flat).

RSS and CPU of each process are sampled every second from /proc (``infra.sampling``); "flat"
means the RSS at the end is within 10 % (or 16 MiB) of the RSS after warm-up, taken at 20 % of the
timed run; for the publisher, run once per month, the last month's peak against the first's.

Writes out/bench/replay_loop-<stamp>.json and prints a table. Topics, schema, model and the
generated data are removed at the end unless ``--keep``. Figures: docs/benchmarks/replay_loop.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from infra.demo.runner import demo_settings, drop_namespace  # noqa: E402
from infra.demo.services import ChildService, persona_argv  # noqa: E402
from infra.sampling import Sampler  # noqa: E402
from infra.stack.process import free_port  # noqa: E402
from monitor.settings import MonitorSettings, parse_duration  # noqa: E402
from personas import db  # noqa: E402
from personas.errors import ConfigError, PersonaError  # noqa: E402
from personas.kafka import consumer_config, ensure_topics  # noqa: E402
from personas.settings import Settings, settings_env  # noqa: E402

EVENTS_PER_MONTH = 1_000_000
WARM_FRACTION = 0.2


@dataclass
class LoopResult:
    started_at: str
    events: int
    months: list[str]
    namespace: str
    load_average: list[float]
    windows_expected: int = 0
    stage_s: dict[str, float | None] = field(default_factory=dict)
    rates: dict[str, float | None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    rss_mib: dict[str, dict[str, Any]] = field(default_factory=dict)
    cpu_s_per_million: dict[str, float] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return bool(self.checks) and all(self.checks.values())


def _window_starts(times_us: Any, size: timedelta, origin: datetime) -> set[int]:
    """Indices of the monitor's time windows the event times fall in (monitor.windows arithmetic)."""
    import numpy as np

    size_us = size // timedelta(microseconds=1)
    origin_us = (origin - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return {int(i) for i in np.unique((times_us - origin_us) // size_us)}


def generate(
    n: int, months: int, folder: Path, console: Console
) -> tuple[list[Path], list[datetime]]:
    """One Parquet file per month; the start of every window the data closes."""
    from personas.catalogue import load_vendor_catalogue
    from producer.files import write_events
    from producer.generator import MonthSpec, generate_month

    ms = MonitorSettings()
    if ms.window.strip().isdigit():
        raise ConfigError("replay_loop times event-time windows; unset PERSONA_MONITOR_WINDOW")
    size, origin = parse_duration(ms.window), ms.window_origin
    catalogue = load_vendor_catalogue()
    files: list[Path] = []
    indices: set[int] = set()
    newest_us = 0
    for i in range(months):
        month = f"{2025 + i // 12}-{i % 12 + 1:02d}"
        share = n // months + (1 if i < n % months else 0)
        frame = generate_month(MonthSpec(month, share, 2.0, 7 + i), catalogue)
        times_us = frame["submitted_at"].to_numpy(dtype="datetime64[us]").astype("int64")
        indices |= _window_starts(times_us, size, origin)
        newest_us = max(newest_us, int(times_us.max()))
        files.append(write_events(frame, folder / f"{month}.parquet"))
        console.print(f"  generated {month}: {share:,} events")
        del frame, times_us
    watermark = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=newest_us)
    watermark -= parse_duration(ms.allowed_lateness)
    starts = [origin + k * size for k in sorted(indices)]
    return files, [s for s in starts if s + size <= watermark]


def _metric(port: int, name: str) -> float | None:
    """One counter of a service's /metrics (None while it does not answer)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (name, f"{name}_total"):
                return float(sample.value)
    return 0.0


@dataclass
class Progress:
    """First sample that moved and first sample that reached the total, of one counter."""

    moved: float | None = None
    done: float | None = None

    def see(self, value: float | None, total: int, now: float) -> None:
        if value and self.moved is None:
            self.moved = now
        if value is not None and value >= total and self.done is None:
            self.done = now

    def rate(self, total: int) -> float | None:
        if self.moved is None or self.done is None:
            return None
        return total / max(self.done - self.moved, 1e-9)


def _watermark_total(settings: Settings, topic: str) -> int:
    """Messages on ``topic``: the sum over partitions of high − low watermark offsets."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(consumer_config(settings, f"persona-monitor-read-{uuid.uuid4().hex[:8]}"))
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def _verdicts(settings: Settings, starts: list[datetime]) -> tuple[int, datetime | None]:
    """(expected windows published, when the last was published)."""
    with db.connect(settings, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), max(published_at) FROM drift_reports "
            "WHERE published_at IS NOT NULL AND window_start = ANY(%s)",
            (starts,),
        ).fetchone()
    return (0, None) if row is None else (int(row[0]), row[1])


def run(args: argparse.Namespace, console: Console) -> LoopResult:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    tag = uuid.uuid4().hex[:8]
    settings = demo_settings(Settings(), f"bench_loop_{tag}")
    months = args.months or max(3, math.ceil(args.events / EVENTS_PER_MONTH))
    folder = (REPO / "out" / "bench" / f"replay_loop-{stamp}").resolve()
    result = LoopResult(
        datetime.now(UTC).isoformat(timespec="seconds"),
        args.events,
        [],
        settings.pg_schema,
        [round(x, 2) for x in os.getloadavg()],
    )
    console.print(
        f"replay loop {stamp}: {args.events:,} events over {months} month(s); namespace "
        f"{settings.pg_schema} (topics {settings.topics.responses}, …); files in {folder}"
    )
    services: dict[str, ChildService] = {}
    publisher: list[ChildService] = []
    span: tuple[float, float] | None = None
    sampler = Sampler(
        {
            "bench": os.getpid,
            **{n: _pid_of(services, n) for n in ("stream", "monitor", "trainer")},
            "publisher": lambda: _pid(publisher[-1]) if publisher else None,
        }
    ).start()
    try:
        db.check_postgres(settings)
        ensure_topics(settings)
        db.apply_migrations(settings)
        files, starts = generate(args.events, months, folder / "data", console)
        result.months = [f.stem for f in files]
        result.windows_expected = len(starts)
        env = settings_env(settings)
        env.update(
            PERSONA_STREAM_STATE_DIR=str(folder / "stream-state"),
            PERSONA_MONITOR_REPORTS_DIR=str(folder / "reports"),
            PERSONA_MONITOR_METRICS_PORT=str(free_port()),
            PERSONA_MONITOR_INSTANCE_ID=f"monitor-{tag}",
            PERSONA_TRAINER_GROUP_ID=f"persona-trainer-{settings.pg_schema}",
            PERSONA_TRAINER_METRICS_PORT=str(free_port()),
        )
        boot = subprocess.run(
            persona_argv("train", "bootstrap"), env=env, capture_output=True, text=True, check=False
        )
        if boot.returncode != 0:
            raise PersonaError(f"persona train bootstrap failed: {boot.stderr[-1500:]}")
        web = free_port()
        logs = folder / "logs"
        argv = {
            "stream": persona_argv(
                "stream", "--app-id", f"persona-stream-{settings.pg_schema}", "--web-port", str(web)
            ),
            "monitor": persona_argv(
                "monitor", "--window", "7d", "--group-id", f"persona-monitor-{settings.pg_schema}"
            ),
            "trainer": persona_argv("trainer"),
        }
        for name in ("stream", "monitor", "trainer") if args.trainer else ("stream", "monitor"):
            services[name] = ChildService(name, argv[name], logs / f"{name}.log", env).start()
        services["stream"].wait_for_log("persona stream worker ready", 240)
        span = _loop(
            args, settings, env, files, starts, services, publisher, sampler, web, result, console
        )
    finally:
        sampler.stop()
        for service in services.values():
            service.stop()
        if not args.keep:
            drop_namespace(settings)
            shutil.rmtree(folder / "data", ignore_errors=True)
    if span is not None:
        _figures(result, sampler, span, args.require_flat)
    out = REPO / "out" / "bench" / f"replay_loop-{stamp}.json"
    out.write_text(json.dumps(asdict(result) | {"held": result.held}, indent=2) + "\n")
    _print(result, console)
    print(f"result: {out}", flush=True)  # one unwrapped line: tests and scripts read it
    return result


def _pid(service: ChildService) -> int | None:
    return service.process.pid if service.process is not None and service.alive() else None


def _pid_of(services: dict[str, ChildService], name: str) -> Any:
    return lambda: _pid(services[name]) if name in services else None


def _loop(
    args: argparse.Namespace,
    settings: Settings,
    env: dict[str, str],
    files: list[Path],
    starts: list[datetime],
    services: dict[str, ChildService],
    publisher: list[ChildService],
    sampler: Sampler,
    web: int,
    result: LoopResult,
    console: Console,
) -> tuple[float, float]:
    """Publish every month, then wait on the conditions; fills stage times, rates and counts."""
    n = args.events
    worker, monitor = Progress(), Progress()
    monitor_port = int(env["PERSONA_MONITOR_METRICS_PORT"])
    t0, wall0 = time.monotonic(), datetime.now(UTC)
    last_line, last_change, last_seen = t0, t0, (-1.0, -1.0, -1)
    published_at: float | None = None
    rows = verdicts = 0
    last_verdict: datetime | None = None
    pending = list(files)
    while True:
        now = time.monotonic()
        for service in services.values():
            service.check_alive()
        if publisher and not publisher[-1].alive():
            code = publisher[-1].wait_exit(5)
            if code != 0:
                raise PersonaError(f"{publisher[-1].name} exited {code}; see {publisher[-1].log}")
        if pending and (not publisher or not publisher[-1].alive()):
            path = pending.pop(0)
            publisher.append(
                ChildService(
                    f"publish {path.stem}",
                    persona_argv("publish", str(path), "--quiet"),
                    path.parent.parent / "logs" / f"publish-{path.stem}.log",
                    env,
                ).start()
            )
        if published_at is None and not pending and not publisher[-1].alive():
            published_at = now - t0
        inserted = _metric(web, "persona_stream_rows_inserted")
        consumed = _metric(monitor_port, "persona_monitor_labels_consumed")
        worker.see(inserted, n, now)
        monitor.see(consumed, n, now)
        if inserted is not None and inserted >= n and rows < n:
            rows = db.label_counts(settings)[0]
        verdicts, last_verdict = _verdicts(settings, starts)
        seen = (inserted or 0.0, consumed or 0.0, verdicts)
        if seen != last_seen:
            last_seen, last_change = seen, now
        if now - last_line >= args.progress_every:
            last_line = now
            done = len(publisher) - (1 if publisher[-1].alive() else 0)
            console.print(
                f"t={now - t0:6.0f}s  published {done}/{len(files)} files  labelled "
                f"{int(seen[0]):,}  monitor {int(seen[1]):,}  windows {verdicts}/{len(starts)}"
            )
        if published_at is not None and rows >= n and verdicts >= len(starts):
            break
        if now - last_change > args.stall_timeout:
            console.print(f"[red]no progress for {args.stall_timeout:.0f} s; accounting as is[/]")
            break
        # The polling period of the figures (±1 s); a running publisher is waited on instead, so
        # the next month starts the moment the last one ends.
        if publisher[-1].process is not None and publisher[-1].alive():
            with contextlib.suppress(subprocess.TimeoutExpired):
                publisher[-1].process.wait(1.0)
        else:
            time.sleep(1.0)
    end = time.monotonic()
    # The last verdict can be published before the counter of the last labels is sampled.
    deadline = end + 30
    while monitor.done is None and time.monotonic() < deadline:
        time.sleep(0.5)
        monitor.see(_metric(monitor_port, "persona_monitor_labels_consumed"), n, time.monotonic())
    result.counts["monitor_labels"] = int(
        _metric(monitor_port, "persona_monitor_labels_consumed") or 0
    )
    result.counts["monitor_late"] = int(_metric(monitor_port, "persona_monitor_late_events") or 0)
    with db.connect(settings, autocommit=True) as conn:
        row = conn.execute("SELECT max(labelled_at) FROM persona_labels").fetchone()
    last_label = None if row is None else row[0]

    def since(t: datetime | None) -> float | None:
        return None if t is None else round((t - wall0).total_seconds(), 2)

    result.stage_s = {
        "publish done": None if published_at is None else round(published_at, 2),
        "labels all in PostgreSQL": since(last_label) if rows >= n else None,
        "last verdict": since(last_verdict) if verdicts >= len(starts) else None,
    }
    total = result.stage_s["last verdict"]
    result.rates = {
        "end to end": None if not total else round(n / total, 1),
        "publish": None if not published_at else round(n / published_at, 1),
        "stream worker": _round(worker.rate(n)),
        "monitor": _round(monitor.rate(n)),
    }
    result.counts |= _account(settings, n, starts, result)
    result.checks["the monitor read every label"] = result.counts["monitor_labels"] >= n
    late = result.counts["monitor_late"]
    if late:  # a finding about the loop, not a broken count: reported, not an exit status
        result.notes.append(
            f"the monitor dropped {late:,} labels ({late / n:.1%}) as late: a window closed "
            "before the worker had written every partition's labels for it (see its log)"
        )
    result.cpu_s_per_million = {
        name: round(sampler.cpu_between(name, t0, end) / n * 1e6, 2)
        for name in ("publisher", "stream", "monitor", "trainer", "bench")
        if sampler.samples.get(name)
    }
    return t0, end


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _account(
    settings: Settings, n: int, starts: list[datetime], result: LoopResult
) -> dict[str, int]:
    rows, distinct = db.label_counts(settings)
    with db.connect(settings, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE window_start = ANY(%s)) FROM drift_reports "
            "WHERE published_at IS NOT NULL",
            (starts,),
        ).fetchone()
    decided, expected_decided = (0, 0) if row is None else (int(row[0]), int(row[1]))
    counts = {
        "published": _watermark_total(settings, settings.topics.responses),
        "rows": rows,
        "distinct_rows": distinct,
        "labels_on_topic": _watermark_total(settings, settings.topics.labels),
        "dead_letters": _watermark_total(settings, settings.topics.dlq),
        "windows_decided": decided,
        "expected_windows_decided": expected_decided,
    }
    result.checks = {
        "events published = N": counts["published"] == n,
        "rows in PostgreSQL = N": rows == n,
        "one row per event": distinct == rows,
        "labels on the topic = N": counts["labels_on_topic"] == n,
        "no dead letters": counts["dead_letters"] == 0,
        "every expected window decided": expected_decided == len(starts),
        "no window beyond the expected": decided == len(starts),
    }
    return counts


def _figures(
    result: LoopResult, sampler: Sampler, span: tuple[float, float], require_flat: bool
) -> None:
    warm_at = span[0] + WARM_FRACTION * (span[1] - span[0])
    for name in ("publisher", "stream", "monitor", "trainer", "bench"):
        figures = sampler.figures(name, warm_at, per_process=name == "publisher")
        if figures is not None:
            result.rss_mib[name] = asdict(figures) | {
                "growth": round(figures.growth_mib, 1),
                "flat": figures.flat,
            }
            if require_flat:
                result.checks[f"RSS of {name} flat"] = figures.flat


def _print(result: LoopResult, console: Console) -> None:
    def fmt(x: float | None, unit: str = "") -> str:
        return "—" if x is None else f"{x:,.1f}{unit}"

    table = Table(title=f"replay loop, {result.events:,} events, {len(result.months)} month(s)")
    for column in ("service", "start MiB", "warm MiB", "peak MiB", "end MiB", "flat", "CPU s / 1M"):
        table.add_column(column, justify="right" if column != "service" else "left")
    for name, rss in result.rss_mib.items():
        table.add_row(
            name,
            *(f"{rss[k]:,.1f}" for k in ("start", "warm", "peak", "end")),
            "flat" if rss["flat"] else f"[red]+{rss['growth']:.0f} MiB[/]",
            fmt(result.cpu_s_per_million.get(name)),
        )
    console.print(table)
    for stage, t in result.stage_s.items():
        console.print(f"  {stage:<26} at {fmt(t, ' s')}")
    for what, rate in result.rates.items():
        console.print(f"  events/s {what:<17} {fmt(rate)}")
    console.print(f"  counts {result.counts}")
    for name, ok in result.checks.items():
        console.print(f"  {'held  ' if ok else '[red]FAILED[/]'}  {name}")
    for note in result.notes:
        console.print(f"  [yellow]note[/]    {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=None, help="default max(3, ceil(N/1M))")
    parser.add_argument("--trainer", action="store_true", help="run `persona trainer` too")
    parser.add_argument("--keep", action="store_true", help="keep topics, schema, model, data")
    parser.add_argument("--require-flat", action="store_true", help="exit 1 if an RSS grew")
    parser.add_argument("--stall-timeout", type=float, default=180.0)
    parser.add_argument("--progress-every", type=float, default=10.0)
    args = parser.parse_args()
    console = Console(highlight=False)
    result = run(args, console)
    sys.exit(0 if result.held else 1)


if __name__ == "__main__":
    main()
