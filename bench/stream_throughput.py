"""End-to-end throughput and latency of the stream worker vs a bare confluent-kafka loop.

    .venv/bin/python bench/stream_throughput.py [--events N] [--rate 2000] [--seconds 10]
                                                [--engines batch,agent] [--workers 1,2]

Every system under test runs as its own process, reads the same payloads from a topic of its
own and writes PersonaLabel JSON with the same labelling code (``stream_app.labelling``):

* **baseline**: a bare confluent-kafka consume → label → produce loop (no PostgreSQL, no commit
  wait): our practical ceiling;
* **passthrough**: a Faust agent with the worker's batching and acks that only copies bytes: what
  Faust's per-message dispatch alone allows;
* **batch** / **agent**: ``persona stream --engine …`` as users run it (validation, labels, DLQ,
  PostgreSQL COPY + ON CONFLICT, waits for broker acks before committing).

Two phases per system, measured by this harness (its own producer and consumer):
1. *replay*: N pre-generated events produced as fast as possible; events/s = N / (time of the
   last label received − time the first event was sent);
2. *paced*: events sent at ``--rate``/s for ``--seconds`` with ``submitted_at`` = send time;
   latency = label received − submitted_at (p50/p99).
``--workers 1,2`` measures each engine once per worker count, one after the other in the same
run (topics and schema of their own, 4 partitions each) and prints the scaling ratio.
Everything it creates (topics, PostgreSQL schema) is deleted at the end. Needs the stack up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from infra.sampling import StackServers, cpu_seconds, server_cpu  # noqa: E402
from infra.stack.process import free_port  # noqa: E402
from personas import db  # noqa: E402
from personas.catalogue import FEATURES, load_vendor_catalogue  # noqa: E402
from personas.kafka import (  # noqa: E402
    TopicSpec,
    admin_config,
    consumer_config,
    ensure_topics,
    faust_broker,
    produce_waiting,
    producer_config,
)
from personas.model import CentroidModel  # noqa: E402
from personas.settings import Settings, TopicNames  # noqa: E402
from stream_app.settings import StreamSettings  # noqa: E402

PARTITIONS = 4
#: The worker's own default (PERSONA_STREAM_MAX_BATCH), so every system batches alike.
DEFAULT_BATCH: int = StreamSettings.model_fields["max_batch"].default


def payloads(n: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
    """n SurveyResponse JSON documents (same for both systems)."""
    model = CentroidModel.from_catalogue(load_vendor_catalogue())
    rng = np.random.default_rng(seed)
    x = model.centroids[rng.integers(0, 3, n)] + rng.normal(0, 2.0, (n, 10))
    start = datetime(2026, 3, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        at = (start + timedelta(seconds=i)).isoformat()
        features = ",".join(f'"{f}":{v!r}' for f, v in zip(FEATURES, x[i].tolist(), strict=True))
        doc = (
            f'{{"schema_version":1,"event_id":"{uuid.UUID(int=(seed << 64) | i)}",'
            f'"respondent_id":"r{i}","submitted_at":"{at}",{features}}}'
        )
        out.append((f"r{i}".encode(), doc.encode()))
    return out


def live_payload(i: int, x: list[float]) -> tuple[bytes, bytes]:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "respondent_id": f"live{i}",
        "submitted_at": datetime.now(UTC).isoformat(),
    }
    doc.update(zip(FEATURES, x, strict=True))
    return doc["respondent_id"].encode(), json.dumps(doc).encode()


# --------------------------------------------------------------------------- baseline loop


def run_baseline(settings: Settings, source: str, sink: str, batch: int, timeout: float) -> None:
    """The bare ceiling: consume a batch, label it, produce labels; no PostgreSQL."""
    from confluent_kafka import Consumer, Producer

    from stream_app.labelling import label_batch
    from stream_app.records import RawRecord

    model = CentroidModel.from_catalogue(load_vendor_catalogue())
    consumer = Consumer(
        consumer_config(settings, f"bench-baseline-{uuid.uuid4().hex}", **{"fetch.wait.max.ms": 5})
    )
    producer = Producer(producer_config(settings, **{"linger.ms": 2}))
    consumer.subscribe([source])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    announced = False
    while not stop.is_set():
        # Any, as in the worker's loop: a consumed message always has topic/partition/offset.
        messages: list[Any] = consumer.consume(batch, timeout)
        if not announced and consumer.assignment():
            print("READY", flush=True)
            announced = True
        records = [
            RawRecord(m.key(), m.value(), m.topic(), m.partition(), m.offset(), m.timestamp()[1])
            for m in messages
            if m.error() is None
        ]
        if not records:
            producer.poll(0)
            continue
        out = label_batch(records, model)
        produce = producer.produce
        for key, value in out.labels:
            try:
                produce(sink, value, key)
            except BufferError:
                produce_waiting(producer, sink, value, key, wait_s=0.01)
        producer.poll(0)
        consumer.commit(asynchronous=True)
    producer.flush(10)
    consumer.close()


def run_faust_passthrough(
    settings: Settings, source: str, sink: str, batch: int, timeout: float
) -> None:
    """Faust's own ceiling: the same noack_take batching and acks, but no parsing, labelling or
    PostgreSQL; the input bytes are copied to the output topic with confluent-kafka."""
    import faust
    from confluent_kafka import Producer

    tag = uuid.uuid4().hex[:8]
    app = faust.App(
        f"persona-stream-{source}",
        **faust_broker(settings),
        datadir=f"/tmp/bench-passthrough-{tag}",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=max(4096, 2 * batch),
        broker_max_poll_records=batch,
        topic_replication_factor=settings.kafka_replication_factor,
    )
    topic = app.topic(
        source, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    producer = Producer(producer_config(settings, **{"linger.ms": 2}))

    @app.agent(topic)
    async def passthrough(stream: Any) -> None:
        async for events in stream.noack_take(batch, within=timeout):
            for event in events:
                producer.produce(sink, event.message.value, event.message.key)
            producer.poll(0)
            for event in events:
                await stream.ack(event)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # Faust's stub wants a sync receiver
    async def ready(sender: Any, **_: Any) -> None:
        print("READY", flush=True)

    faust.Worker(
        app, loglevel="WARNING", quiet=True, redirect_stdouts=False
    ).execute_from_commandline()


# --------------------------------------------------------------------------- harness


class LabelCounter(threading.Thread):
    """Counts labels on the output topic; in paced mode records each label's latency."""

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.consumer = Consumer(
            consumer_config(
                settings, f"bench-reader-{uuid.uuid4().hex}", **{"fetch.wait.max.ms": 5}
            )
        )
        self.consumer.subscribe([topic])
        self.count = 0
        self.last_at = 0.0
        self.latencies: list[float] | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            messages = self.consumer.consume(5000, 0.002)
            if not messages:
                continue
            now = time.time()
            good = [m for m in messages if m.error() is None]
            self.count += len(good)
            self.last_at = now
            if self.latencies is not None:
                for m in good:
                    submitted = json.loads(m.value() or b"null")["submitted_at"]
                    if submitted.startswith("2026-03"):
                        continue  # a replayed event, not a paced one
                    at = datetime.fromisoformat(submitted.replace("Z", "+00:00")).timestamp()
                    self.latencies.append(now - at)
        self.consumer.close()

    def wait_count(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.count < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.count >= n


def produce_all(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    from confluent_kafka import Producer

    producer = Producer(producer_config(settings))
    started = time.time()
    produce = producer.produce
    for key, value in messages:
        try:
            produce(topic, value, key)
        except BufferError:
            produce_waiting(producer, topic, value, key, wait_s=0.01)
    producer.flush(60)
    return started


def produce_paced(settings: Settings, topic: str, rate: int, seconds: float) -> int:
    from confluent_kafka import Producer

    # Ready before the clock starts: an idempotent producer's first messages wait ~100 ms for
    # its producer id, and a first produce for the topic's metadata; both showed as 60-120 ms
    # in the first 250 ms of every paced phase, a cost of this harness, not of the pipeline.
    producer = Producer(producer_config(settings, **{"linger.ms": 1, "enable.idempotence": False}))
    producer.list_topics(topic, timeout=10)
    rng = np.random.default_rng(5)
    model = CentroidModel.from_catalogue(load_vendor_catalogue())
    total = int(rate * seconds)
    x = (model.centroids[rng.integers(0, 3, total)] + rng.normal(0, 2, (total, 10))).tolist()
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    started = time.perf_counter()
    sent = 0
    while sent < total:
        for _ in range(min(per_tick, total - sent)):
            key, value = live_payload(sent, x[sent])
            producer.produce(topic, value, key)
            sent += 1
        producer.poll(0)
        next_at = started + (sent / rate)
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    producer.flush(30)
    return total


def measure(
    name: str,
    settings: Settings,
    source: str,
    sink: str,
    start: Any,
    messages: list[tuple[bytes, bytes]],
    rate: int,
    seconds: float,
) -> dict[str, float]:
    counter = LabelCounter(settings, sink)
    counter.start()
    started = start()
    procs = started if isinstance(started, list) else [started]
    try:
        n = len(messages)
        servers = StackServers.find(settings)
        servers0 = servers.snapshot()
        cpu0 = sum(cpu_seconds(proc.pid) for proc in procs)
        own0 = _own_cpu_seconds()
        t0 = produce_all(settings, source, messages)
        if not counter.wait_count(n, timeout=max(120.0, n / 500)):
            raise SystemExit(f"{name}: only {counter.count}/{n} labels arrived")
        elapsed = counter.last_at - t0
        cpu = sum(cpu_seconds(proc.pid) for proc in procs) - cpu0
        own = _own_cpu_seconds() - own0
        broker, pg = server_cpu(servers0, servers.snapshot())
        time.sleep(1.0)
        counter.latencies = []
        paced = produce_paced(settings, source, rate, seconds)
        counter.wait_count(n + paced, timeout=60)
        time.sleep(0.5)
        lat = np.asarray(counter.latencies) * 1000.0
    finally:
        counter.halt.set()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {
        "events": n,
        "seconds": elapsed,
        "events_per_s": n / elapsed,
        "cpu_s_per_m": cpu / n * 1e6,  # the system under test, all its threads
        "harness_cpu_s_per_m": own / n * 1e6,  # this process: producing and counting
        # the stack's broker and PostgreSQL over the replay (NaN when not the local stack's)
        "broker_cpu_s_per_m": broker / n * 1e6 if broker is not None else float("nan"),
        "pg_cpu_s_per_m": pg / n * 1e6 if pg is not None else float("nan"),
        "replay_cores": (cpu + own + (broker or 0.0) + (pg or 0.0)) / elapsed,
        "paced_events": len(lat),
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "max_ms": float(lat.max()) if lat.size else float("nan"),
    }


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _wait_line(proc: subprocess.Popen[bytes], needle: bytes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise SystemExit(f"process exited {proc.returncode} before ready")
        if needle in line:
            threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()  # type: ignore[union-attr]
            return
    raise SystemExit("not ready in time")


def start_worker_process(
    settings: Settings,
    engine: str,
    state_dir: Path,
    batch: int,
    batch_timeout: float,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``persona stream --engine ENGINE`` on the topics, schema and model name of ``settings``,
    returned once it logs that it is ready (its partitions assigned)."""
    env = dict(os.environ)
    env.update({f"PERSONA_TOPIC_{k.upper()}": v for k, v in settings.topics.model_dump().items()})
    env.update(
        PERSONA_PG_SCHEMA=settings.pg_schema,
        PERSONA_MODEL_NAME=settings.model_name,
        PERSONA_STREAM_STATE_DIR=str(state_dir),
    )
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("persona")),
            "stream",
            "--engine",
            engine,
            "--web-port",
            str(free_port()),
            "--batch-size",
            str(batch),
            "--batch-timeout",
            str(batch_timeout),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env=env,
    )
    _wait_line(proc, b"persona stream worker ready", 120)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="events in the replay phase")
    parser.add_argument("--rate", type=int, default=2000, help="events/s of the paced phase")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the paced phase")
    parser.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH, help="max batch of every system"
    )
    parser.add_argument(
        "--batch-timeout", type=float, default=0.005, help="batch timeout of both systems (s)"
    )
    parser.add_argument("--baseline", nargs=2, metavar=("SOURCE", "SINK"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--passthrough", nargs=2, metavar=("SOURCE", "SINK"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--workers",
        default="1",
        help="worker processes in one consumer group; a comma list (1,2) measures each count",
    )
    parser.add_argument(
        "--skip-passthrough", action="store_true", help="do not measure the Faust pass-through"
    )
    parser.add_argument(
        "--engines",
        default="batch,agent",
        help="comma-separated engines of `persona stream` to measure (batch, agent)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        metavar="TREE",
        help=(
            "also measure `persona stream --engine batch` run from TREE (a checkout of older "
            "code, e.g. `git archive main | tar -x -C TREE`, on PYTHONPATH): before/after in "
            "the same run"
        ),
    )
    args = parser.parse_args()
    base = Settings()
    if args.passthrough:
        run_faust_passthrough(
            base, args.passthrough[0], args.passthrough[1], args.batch, args.batch_timeout
        )
        return
    if args.baseline:
        run_baseline(base, args.baseline[0], args.baseline[1], args.batch, args.batch_timeout)
        return

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = sorted(set(engines) - {"batch", "agent"})
    if unknown:
        raise SystemExit(f"error: unknown engine(s) {unknown}: choose from batch, agent")
    try:
        counts = [int(n) for n in args.workers.split(",") if n.strip()]
    except ValueError:
        raise SystemExit(f"error: --workers {args.workers!r}: give counts like 1 or 1,2") from None
    if not counts or min(counts) < 1 or max(counts) > PARTITIONS:
        raise SystemExit(f"error: --workers: each count must be 1..{PARTITIONS} (the partitions)")
    tag = uuid.uuid4().hex[:8]
    if args.reference is not None:
        engines.append("reference")

    def key_of(engine: str, n: int) -> str:
        """One system per (engine, worker count); the key names its topics and schema."""
        return f"{engine}_{n}w" if len(counts) > 1 else engine

    systems = {key_of(engine, n): (engine, n) for engine in engines for n in counts}
    worker_settings = {key: _engine_settings(base, tag, key) for key in systems}
    base_in, base_out = f"bench-base-in-{tag}", f"bench-base-out-{tag}"
    pass_in, pass_out = f"bench-pass-in-{tag}", f"bench-pass-out-{tag}"
    specs = [
        TopicSpec(base_in, PARTITIONS),
        TopicSpec(base_out, PARTITIONS),
        TopicSpec(pass_in, PARTITIONS),
        TopicSpec(pass_out, PARTITIONS),
    ]
    for settings in worker_settings.values():
        topics = settings.topics
        specs += [
            TopicSpec(topics.responses, PARTITIONS),
            TopicSpec(topics.labels, PARTITIONS),
            TopicSpec(topics.dlq, 1),
            TopicSpec(topics.model_updates, 1, {"cleanup.policy": "compact"}),
        ]
    ensure_topics(base, specs)
    for settings in worker_settings.values():
        db.apply_migrations(settings)
    print(f"generating {args.events:,} events ...", flush=True)
    messages = payloads(args.events)
    state = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-stream-{tag}"
    python = sys.executable
    results: dict[str, dict[str, float]] = {}
    expected = args.events + int(args.rate * args.seconds)
    try:

        def start_helper(flag: str, source: str, sink: str) -> subprocess.Popen[bytes]:
            proc = subprocess.Popen(
                [
                    python,
                    __file__,
                    flag,
                    source,
                    sink,
                    "--batch",
                    str(args.batch),
                    "--batch-timeout",
                    str(args.batch_timeout),
                ],
                stdout=subprocess.PIPE,
                cwd=REPO,
            )
            _wait_line(proc, b"READY", 60)
            return proc

        def start_workers(key: str) -> list[subprocess.Popen[bytes]]:
            procs = [start_worker(key, i) for i in range(systems[key][1])]
            if len(procs) > 1:
                time.sleep(5)  # let the group settle on its final assignment
            return procs

        def start_worker(key: str, index: int) -> subprocess.Popen[bytes]:
            engine = systems[key][0]
            reference = engine == "reference"  # the older tree's batch engine, same venv
            return start_worker_process(
                worker_settings[key],
                "batch" if reference else engine,
                state / f"{key}{index}",
                args.batch,
                args.batch_timeout,
                extra_env={"PYTHONPATH": str(args.reference.resolve())} if reference else None,
            )

        print("baseline: bare confluent-kafka consume -> label -> produce ...", flush=True)
        results["baseline"] = measure(
            "baseline",
            base,
            base_in,
            base_out,
            lambda: start_helper("--baseline", base_in, base_out),
            messages,
            args.rate,
            args.seconds,
        )
        print(json.dumps(results["baseline"]), flush=True)
        if not args.skip_passthrough:
            print("faust pass-through: noack_take -> copy bytes -> ack (no label, no PG) ...")
            results["passthrough"] = measure(
                "passthrough",
                base,
                pass_in,
                pass_out,
                lambda: start_helper("--passthrough", pass_in, pass_out),
                messages,
                args.rate,
                args.seconds,
            )
            print(json.dumps(results["passthrough"]), flush=True)
        for engine, settings in worker_settings.items():
            print(
                f"persona stream --engine {systems[engine][0]} x {systems[engine][1]} "
                "(labels + PostgreSQL + DLQ) ...",
                flush=True,
            )
            results[engine] = measure(
                engine,
                settings,
                settings.topics.responses,
                settings.topics.labels,
                lambda engine=engine: start_workers(engine),
                messages,
                args.rate,
                args.seconds,
            )
            results[engine]["pg_rows"], results[engine]["pg_distinct"] = db.label_counts(settings)
            print(json.dumps(results[engine]), flush=True)
            print(
                f"{engine}: {results[engine]['pg_rows']:,.0f} rows in PostgreSQL, "
                f"{results[engine]['pg_distinct']:,.0f} distinct (expected {expected:,})"
            )
    finally:
        _cleanup(base, [s.name for s in specs], tag, list(worker_settings.values()))

    b = results["baseline"]
    print()
    print(
        "| system | replay events/s | vs bare loop | CPU s per 1M events | broker CPU s/1M "
        "| PostgreSQL CPU s/1M | cores busy | paced p50 ms | paced p99 ms | paced max ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    table = [("bare confluent-kafka loop", b)]
    if "passthrough" in results:
        table.append(("Faust pass-through, no work (framework ceiling)", results["passthrough"]))
    for key, (engine, n) in systems.items():
        workers = f"{n} worker{'s' if n > 1 else ''}"
        name = f"persona stream --engine {engine}, {workers}"
        if engine == "reference":
            name = f"persona stream --engine batch from {args.reference}, {workers}"
        table.append((name, results[key]))
    for name, r in table:
        print(
            f"| {name} | {r['events_per_s']:,.0f} | {r['events_per_s'] / b['events_per_s']:.2f} | "
            f"{r['cpu_s_per_m']:.1f} | {r['broker_cpu_s_per_m']:.1f} | {r['pg_cpu_s_per_m']:.1f} | "
            f"{r['replay_cores']:.2f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} |"
        )
    print(f"\nreplay of {args.events:,} events; paced phase {args.rate}/s for {args.seconds:.0f} s")
    print(
        "CPU columns: user + system seconds per million replayed events of the system under "
        "test (all its processes), the broker and PostgreSQL; cores busy = all of it plus this "
        f"harness, per second of replay, of the {os.cpu_count()} cores here"
    )
    for engine in worker_settings:
        r = results[engine]
        print(
            f"{engine}: worker / bare loop = {r['events_per_s'] / b['events_per_s']:.2f} "
            f"(target >= 0.5); p99 = {r['p99_ms']:.1f} ms (target <= 20 ms); "
            f"PostgreSQL rows {r['pg_rows']:,.0f} = distinct {r['pg_distinct']:,.0f} "
            f"= expected {expected:,}: {r['pg_rows'] == r['pg_distinct'] == expected}"
        )
    for engine in engines:
        for n in counts if 1 in counts else []:
            if n > 1:
                r, one = results[key_of(engine, n)], results[key_of(engine, 1)]
                print(
                    f"{engine}: {n} workers / 1 (same run) = "
                    f"{r['events_per_s'] / one['events_per_s']:.2f}x events/s "
                    f"(target >= 1.6x for 2)"
                )
    for n in counts if {"batch", "reference"} <= set(engines) else []:
        new, old = results[key_of("batch", n)], results[key_of("reference", n)]
        print(
            f"batch / reference, {n} worker(s) (same run): "
            f"{new['events_per_s'] / old['events_per_s']:.2f}x events/s, "
            f"{old['cpu_s_per_m'] / new['cpu_s_per_m']:.2f}x less CPU per event"
        )


def _engine_settings(base: Settings, tag: str, engine: str) -> Settings:
    """Topics, schema and model name of one engine's worker, private to this run."""
    topics = TopicNames.private(f"bench-{engine}-{tag}")
    return base.model_copy(
        update={
            "topics": topics,
            "pg_schema": f"bench_{tag}_{engine}",
            "model_name": f"bench-{tag}-{engine}",
        }
    )


def _cleanup(settings: Settings, topics: list[str], tag: str, schemas: list[Settings]) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(admin_config(settings))
    leader = [
        t
        for t in admin.list_topics(timeout=10).topics
        if t.startswith("persona-stream-") and tag in t
    ]
    for future in admin.delete_topics(topics + leader, operation_timeout=10).values():
        with contextlib.suppress(Exception):
            future.result(timeout=15)
    with db.connect(settings, autocommit=True) as conn:
        for owner in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{owner.pg_schema}" CASCADE')


if __name__ == "__main__":
    main()
