"""The stream's staircase and its peers: how fast each stage can go, and where the worker stands.

    .venv/bin/python bench/stream_staircase.py [--events 100000] [--batch 10000]
                                               [--systems all] [--quix-python PATH]

One run, one input topic: N synthetic survey events (``producer.generator.generate_month``, i.e.
``personas.synthetic`` around the vendor centroids, serialised by ``producer.payloads``) are
published ONCE to a topic of the run's own (4 partitions, the project's topic names with a
``-bench-stair-<tag>`` suffix), then every system below reads that same backlog from the start
with a consumer group of its own, one after the other, each in its own process:

  staircase (bench/staircase_steps.py: the fastest code we could write for each stage, each step
  doing everything the previous one did):
    1 consume           confluent-kafka consume(num_messages=--batch) batches, every value read
    2 + decode/validate msgspec, the whole batch in one call, SurveyResponse's rules
    3 + label           numpy nearest centroid over the batch
    4 + encode/produce  PersonaLabel JSON (msgspec), produced to a labels topic, acks=all
    5 + PostgreSQL      binary COPY straight into persona_labels (bench schema; staged + ON
                        CONFLICT only on a duplicate key), on a writer thread overlapping the
                        next batch's decode
    6 + offsets         the writer waits for broker acks and the commit, then commits offsets
  peers, on the same topic:
    worker              `persona stream` (default batch engine), as users run it
    agent               `persona stream --engine agent` (Faust agent)
    quix                a Quix Streams app: pydantic → numpy → labels topic (bench/staircase_quix.py)
    quix+pg             the same with Quix's PostgreSQL sink (ON CONFLICT DO NOTHING)

Per system: events/s = N / (time from "ready" — partitions assigned; Quix: first message — to
the last event through: the step's own "DONE", or for the peers every label on the output topic
and, with PostgreSQL, every row in the table), and CPU seconds per million events of the
process (utime + stime of all its threads from /proc/<pid>/stat, what getrusage(RUSAGE_SELF)
reports inside it), of the Kafka broker and of PostgreSQL (the postmaster and its children)
over the same interval, net of their background: the cores each used in the 3 s before the
system started (idle work, other users of the shared servers) times the system's duration.
Without that correction a slow system would carry more of the others' load per event than a
fast one; the background varies, so the net server columns stay approximate. On a busy machine a process gets
only its share of the cores, so events/s measures the machine's load as much as the code (the
table gives the 1-minute load average as each system finished); CPU per event is the steadier
figure, and the ratios at the end give both, from this run only.

Quix Streams runs in its own virtual environment (`make bench-quix`: its pins conflict with the
project's); without it the two Quix rows say so. Needs the local stack (`make up`); broker and
PostgreSQL CPU need the stack's PID files (PERSONA_STACK_DIR). Everything the run creates
(topics, PostgreSQL schemas) is deleted at the end.

The issue's 1,000,000 events take ~7 minutes on the quiet 2-core machine, most of it the agent
engine and Quix (2026-12-04: worker 79,876 events/s = 0.51 of step 4, 1.02x step 6 and 7.34x
Quix Streams with its PostgreSQL sink; figures and what they say:
docs/benchmarks/stream_app.md, "Staircase and peers").
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from staircase_steps import STEPS  # noqa: E402
from stream_throughput import DEFAULT_BATCH, _wait_line, start_worker_process  # noqa: E402

from infra.sampling import StackServers, cpu_seconds, server_cpu  # noqa: E402
from personas import db  # noqa: E402
from personas.kafka import (  # noqa: E402
    KEEP_FOREVER,
    TopicSpec,
    admin_config,
    consumer_config,
    ensure_topics,
    produce_waiting,
    producer_config,
)
from personas.settings import Settings, TopicNames, settings_env  # noqa: E402

STEP_TITLES = {
    "consume": "1 consume only",
    "decode": "2 + decode/validate (msgspec)",
    "label": "3 + label (numpy nearest centroid)",
    "produce": "4 + encode and produce (acks=all)",
    "postgres": "5 + PostgreSQL (direct binary COPY)",
    "offsets": "6 + offsets after durability",
}
PEER_TITLES = {
    "worker": "persona stream (batch engine)",
    "agent": "persona stream --engine agent (Faust)",
    "quix": "Quix Streams, no PostgreSQL",
    "quix+pg": "Quix Streams + PostgreSQLSink",
}
SYSTEMS = (*STEPS, *PEER_TITLES)
WITH_POSTGRES = {"postgres", "offsets", "worker", "agent", "quix+pg"}


# --------------------------------------------------------------------------- the run


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    cpu: float
    broker_cpu: float | None
    pg_cpu: float | None
    note: str = ""
    load: float = float("nan")  # 1-minute load average when it finished
    background: tuple[float | None, float | None] = (None, None)  # cores: broker, PostgreSQL

    def net(self, used: float | None, cores: float | None) -> float | None:
        """A server's CPU over the run less its background over the same time."""
        if used is None or cores is None:
            return used
        return max(0.0, used - cores * self.seconds)

    @property
    def broker_net(self) -> float | None:
        return self.net(self.broker_cpu, self.background[0])

    @property
    def pg_net(self) -> float | None:
        return self.net(self.pg_cpu, self.background[1])

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    @property
    def total_cpu(self) -> float | None:
        """Process + broker + PostgreSQL (net): what one event costs the machine."""
        broker, pg = self.broker_net, self.pg_net
        return None if broker is None or pg is None else self.cpu + broker + pg

    def per_million(self, value: float | None) -> str:
        return "n/a" if value is None else f"{value / self.events * 1e6:,.1f}"


class Output:
    """Counts what a peer has written: labels on its topic (watermarks, no consuming) and rows."""

    def __init__(self, settings: Settings, topic: str, partitions: int) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.settings = settings
        self.consumer = Consumer(consumer_config(settings, f"bench-stair-count-{uuid.uuid4()}"))
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self.start = self.labels()

    def labels(self) -> int:
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + 30
        while True:
            try:
                return sum(
                    self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
                    for tp in self.partitions
                )
            except KafkaException:  # a topic just created may not have its leaders yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def rows(self) -> int:
        with db.connect(self.settings, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM persona_labels").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.consumer.close()


def _drain(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    threading.Thread(target=proc.stdout.read, daemon=True).start()


def _wait_for(
    condition: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise SystemExit(f"{what}: exited with {proc.returncode} before it was done")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not done within {timeout:.0f} s")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Run:
    """One benchmark run: the shared input topic, the systems' own outputs, their cleanup."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.base = Settings()
        self.tag = uuid.uuid4().hex[:8]
        self.topics = TopicNames.private(f"bench-stair-{self.tag}")
        self.source = self.topics.responses
        self.partitions = self.base.kafka_partitions
        self.servers = StackServers.find(self.base)
        self.created_topics: list[str] = [self.source]
        self.schemas: list[str] = []
        self.state = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-staircase-{self.tag}"

    def system_settings(self, name: str) -> Settings:
        """Topics (the shared input, outputs of its own), schema and model name of one system."""
        suffix = name.replace("+", "-")
        own = TopicNames.private(f"bench-stair-{self.tag}-{suffix}")
        topics = own.model_copy(update={"responses": self.source})
        settings = self.base.model_copy(
            update={
                "topics": topics,
                "pg_schema": f"bench_stair_{self.tag}_{suffix.replace('-', '_')}",
                "model_name": f"bench-stair-{self.tag}-{suffix}",
            }
        )
        specs = [
            TopicSpec(topics.labels, self.partitions),
            TopicSpec(topics.dlq, 1),
            TopicSpec(topics.model_updates, 1, {"cleanup.policy": "compact"}),
        ]
        ensure_topics(self.base, specs)
        self.created_topics += [s.name for s in specs]
        if name in WITH_POSTGRES:
            db.apply_migrations(settings)
            self.schemas.append(settings.pg_schema)
        return settings

    def publish(self) -> float:
        """Publish the N events once; returns the publishing rate (events/s)."""
        from confluent_kafka import Producer

        from personas.catalogue import load_vendor_catalogue
        from producer.generator import MonthSpec, generate_month
        from producer.payloads import build_payloads
        from producer.validation import validate_frame

        ensure_topics(self.base, [TopicSpec(self.source, self.partitions, KEEP_FOREVER)])
        frame = generate_month(
            MonthSpec(month="2026-01", n=self.args.events, std=2.0, seed=14),
            load_vendor_catalogue(),
        )
        events, errors = validate_frame(frame)
        if errors or len(events) != self.args.events:
            raise SystemExit(f"synthetic month has {len(errors)} invalid rows")
        values = build_payloads(events)
        keys = events.respondent_id.tolist()
        stamps = (events.submitted_us // 1000).tolist()
        producer = Producer(producer_config(self.base))
        started = time.perf_counter()
        for value, key, stamp in zip(values, keys, stamps, strict=True):
            try:
                producer.produce(self.source, value, key, timestamp=stamp)
            except BufferError:
                produce_waiting(producer, self.source, value, key, timestamp=stamp)
        if producer.flush(120):
            raise SystemExit("the input events were not all delivered")
        return float(self.args.events / (time.perf_counter() - started))

    def background(self, seconds: float = 3.0) -> tuple[float | None, float | None]:
        """Cores the broker and PostgreSQL use while none of our systems runs (other users of
        the shared servers): each system's broker and PostgreSQL columns include this much
        per second of its run, so the slower a system, the more of it its per-event figure
        carries."""
        before = self.servers.snapshot()
        time.sleep(seconds)
        broker, pg = server_cpu(before, self.servers.snapshot())
        return (
            None if broker is None else broker / seconds,
            None if pg is None else pg / seconds,
        )

    def measure(self, name: str) -> Result:
        settings = self.system_settings(name)
        background = self.background()
        if name in STEPS:
            result = self._measure_step(name, settings)
        else:
            result = self._measure_peer(name, settings)
        result.background = background
        return result

    def _timed(self, name: str, proc: subprocess.Popen[bytes], done: Callable[[], None]) -> Result:
        servers0 = self.servers.snapshot()
        cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        try:
            done()
            t1 = time.perf_counter()
            cpu1 = cpu_seconds(proc.pid)
            servers1 = self.servers.snapshot()
        finally:
            _stop(proc)
        broker, pg = server_cpu(servers0, servers1)
        return Result(
            name,
            self.args.events,
            t1 - t0,
            cpu1 - cpu0,
            broker,
            pg,
            load=os.getloadavg()[0],
        )

    def _measure_step(self, name: str, settings: Settings) -> Result:
        group = f"bench-stair-{self.tag}-{name}"
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "bench" / "staircase_steps.py"),
                *(name, self.source, settings.topics.labels, group),
                *(str(self.args.events), str(self.args.batch)),
            ],
            stdout=subprocess.PIPE,
            cwd=REPO,
            env=settings_env(settings),
        )
        _wait_line_only(proc, b"READY", 120, name)

        last: list[str] = []

        def done() -> None:
            last.append(_wait_line_only(proc, b"DONE", self._timeout(), name))

        result = self._timed(name, proc, done)
        result.note = last[0].split(" ", 2)[-1] if last else ""  # bad=<events refused>
        if name == "offsets":
            result.note += f", {self._committed(group):,} offsets committed"
        return result

    def _committed(self, group: str) -> int:
        """The events a consumer group has committed on the input topic."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(consumer_config(self.base, group))
        try:
            wanted = [TopicPartition(self.source, p) for p in range(self.partitions)]
            return sum(max(tp.offset, 0) for tp in consumer.committed(wanted, timeout=10))
        finally:
            consumer.close()

    def _measure_peer(self, name: str, settings: Settings) -> Result:
        output = Output(settings, settings.topics.labels, self.partitions)
        try:
            if name in ("worker", "agent"):
                engine = "batch" if name == "worker" else "agent"
                proc = start_worker_process(
                    settings,
                    engine,
                    self.state / name,
                    self.args.batch,
                    self.args.batch_timeout,
                    {"PERSONA_STREAM_APP_ID": f"bench-stair-{self.tag}-{name}"},
                )
            else:
                python = Path(self.args.quix_python)
                if not python.exists():
                    return Result(name, self.args.events, 0.0, 0.0, None, None, "no Quix venv")
                argv = [str(python), str(REPO / "bench" / "staircase_quix.py"), self.source]
                argv += [settings.topics.labels, f"bench-stair-{self.tag}-{name}"]
                proc = subprocess.Popen(
                    argv + (["--postgres"] if name == "quix+pg" else []),
                    stdout=subprocess.PIPE,
                    cwd=REPO,
                    env=settings_env(settings),
                )
                _wait_line(proc, b"READY", 180)
            n, pg = self.args.events, name in WITH_POSTGRES

            def done() -> None:
                _wait_for(
                    lambda: output.labels() - output.start >= n and (not pg or output.rows() >= n),
                    proc,
                    self._timeout(),
                    name,
                )

            result = self._timed(name, proc, done)
            if pg:
                result.note = f"{output.rows():,} rows"
            return result
        finally:
            output.close()

    def _timeout(self) -> float:
        return max(300.0, float(self.args.events) / 1000)

    def cleanup(self) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(admin_config(self.base))
        names = [t for t in admin.list_topics(timeout=10).topics if self.tag in t]
        for future in admin.delete_topics(names, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)
        with db.connect(self.base, autocommit=True) as conn:
            for schema in self.schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _wait_line_only(proc: subprocess.Popen[bytes], needle: bytes, timeout: float, what: str) -> str:
    """Read the child's lines until one holds ``needle`` and return it (the child keeps its
    pipe)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise SystemExit(f"{what}: exited with {proc.returncode} before {needle.decode()}")
        if needle in line:
            return line.decode().strip()
    raise SystemExit(f"{what}: no {needle.decode()} within {timeout:.0f} s")


# --------------------------------------------------------------------------- report


def _cores(background: tuple[float | None, float | None]) -> str:
    return ", ".join("n/a" if v is None else f"{v:.2f}" for v in background)


def report(results: dict[str, Result], args: argparse.Namespace, publish_rate: float) -> None:
    print()
    print(
        "| step | events/s | CPU s / 1M events: process | broker | PostgreSQL | all three "
        "| background cores: broker, PostgreSQL | load | note |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    for name, r in results.items():
        title = STEP_TITLES.get(name) or PEER_TITLES[name]
        if r.seconds <= 0:
            print(f"| {title} | not run | | | | | | | {r.note} |")
            continue
        print(
            f"| {title} | {r.rate:,.0f} | {r.per_million(r.cpu)} | {r.per_million(r.broker_net)} "
            f"| {r.per_million(r.pg_net)} | {r.per_million(r.total_cpu)} "
            f"| {_cores(r.background)} | {r.load:.1f} | {r.note} |"
        )
    print(f"\n{args.events:,} events, batch {args.batch}; published once at {publish_rate:,.0f}/s")
    print(
        "broker, PostgreSQL: their CPU over the system's run minus their background (cores used "
        "in the 3 s before it started: idle work and other users of the shared servers) x its "
        "duration"
    )

    def ratio(a: str, b: str) -> str:
        """events/s of a over b, and b's process CPU per event over a's (> 1: a is cheaper)."""
        ra, rb = results.get(a), results.get(b)
        if ra is None or rb is None or ra.seconds <= 0 or rb.seconds <= 0 or ra.cpu <= 0:
            return "n/a"
        return f"{ra.rate / rb.rate:.2f} (CPU per event: {rb.cpu / ra.cpu:.2f})"

    print(
        "ratios of events/s (and of process CPU per event, the figure less bent by a busy machine):"
    )
    print(f"worker / best ceiling without PostgreSQL (step 4) = {ratio('worker', 'produce')}")
    print(f"worker / best ceiling with durability (step 6)    = {ratio('worker', 'offsets')}")
    print(f"worker / Quix Streams (no PostgreSQL)             = {ratio('worker', 'quix')}")
    print(f"worker / Quix Streams + PostgreSQLSink            = {ratio('worker', 'quix+pg')}")
    print(f"worker / agent engine                             = {ratio('worker', 'agent')}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=100_000, help="events published once (default 100,000)"
    )
    parser.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH, help="max batch (steps, worker)"
    )
    parser.add_argument(
        "--batch-timeout", type=float, default=0.005, help="batch timeout of the worker (s)"
    )
    parser.add_argument(
        "--systems",
        default="all",
        help=f"comma-separated systems to run, in this order: {','.join(SYSTEMS)} (default all)",
    )
    parser.add_argument(
        "--quix-python",
        default=str(REPO / ".venv-quix" / "bin" / "python"),
        help="the interpreter of the Quix Streams venv (default .venv-quix, `make bench-quix`)",
    )
    args = parser.parse_args()
    chosen = list(SYSTEMS) if args.systems == "all" else args.systems.split(",")
    unknown = sorted(set(chosen) - set(SYSTEMS))
    if unknown:
        raise SystemExit(f"error: unknown system(s) {unknown}: choose from {', '.join(SYSTEMS)}")
    run = Run(args)
    results: dict[str, Result] = {}
    try:
        print(f"publishing {args.events:,} synthetic events to {run.source} ...", flush=True)
        publish_rate = run.publish()
        for name in chosen:
            print(f"{name}: {STEP_TITLES.get(name) or PEER_TITLES[name]} ...", flush=True)
            results[name] = r = run.measure(name)
            print(f"{name}: {r.rate:,.0f} events/s, {r.per_million(r.cpu)} CPU s/1M {r.note}")
    finally:
        run.cleanup()
    report(results, args, publish_rate)


if __name__ == "__main__":
    main()
