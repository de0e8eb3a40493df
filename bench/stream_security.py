"""What security and replication cost the stream worker: `persona stream` (batch engine) on the
single PLAINTEXT broker of the local stack beside the same worker on the three-node SASL_SSL
cluster profile (SCRAM-SHA-512, TLS with host name verification, replication factor 3,
min.insync.replicas 2, acks=all; PostgreSQL over verified TLS), in one run, same payloads.

    .venv/bin/python bench/stream_security.py [--events N] [--rate 2000] [--seconds 10]

Needs both stacks up (`make up`, `make up-cluster`). Each target gets topics, a PostgreSQL schema
and a model name of its own, deleted at the end; the worker runs as the cluster's admin user
(ACL checks are per request, not per event). The measurement harness (replay events/s, paced
p50/p99) is bench/stream_throughput.py's, so the figures compare with docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from stream_throughput import (  # noqa: E402
    DEFAULT_BATCH,
    _wait_line,
    measure,
    payloads,
)

from infra.stack.cluster import ADMIN, Cluster  # noqa: E402
from infra.stack.process import free_port  # noqa: E402
from personas import db  # noqa: E402
from personas.kafka import admin_config, create_topics, topic_specs  # noqa: E402
from personas.settings import Settings, TopicNames, settings_env  # noqa: E402


def _target(base: Settings, tag: str, name: str) -> Settings:
    return base.model_copy(
        update={
            "topics": TopicNames.private(f"bench-{name}-{tag}"),
            "pg_schema": f"bench_{tag}_{name}",
            "model_name": f"bench-{tag}-{name}",
        }
    )


def _start_worker(settings: Settings, extra_env: dict[str, str], state: Path, batch: int) -> Any:
    env = settings_env(settings)
    env.update(extra_env)
    env["PERSONA_STREAM_STATE_DIR"] = str(state)
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("persona")),
            "stream",
            "--web-port",
            str(free_port()),
            "--batch-size",
            str(batch),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env=env,
    )
    _wait_line(proc, b"persona stream worker ready", 180)
    return proc


def _start_bare_loop(settings: Settings, extra_env: dict[str, str], batch: int) -> Any:
    """The same-run ceiling on the same target: stream_throughput's bare confluent-kafka
    consume → label → produce loop (no PostgreSQL), over the target's security and replication."""
    env = settings_env(settings)
    env.update(extra_env)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "bench" / "stream_throughput.py"),
            "--baseline",
            settings.topics.responses,
            settings.topics.dlq,  # the loop's output: a topic of this target nobody else reads
            "--batch",
            str(batch),
        ],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env=env,
    )
    _wait_line(proc, b"READY", 60)
    return proc


def _cleanup(settings: Settings) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(admin_config(settings))
    names = [s.name for s in topic_specs(settings)]
    names += [t for t in admin.list_topics(timeout=30).topics if settings.topics.responses in t]
    for future in admin.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(Exception):
            future.result(timeout=60)
    with db.connect(settings, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{settings.pg_schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events in the replay phase")
    parser.add_argument("--rate", type=int, default=2000, help="events/s of the paced phase")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the paced phase")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="max batch of the worker")
    args = parser.parse_args()

    local = Settings()
    cluster = Cluster(local)
    tag = uuid.uuid4().hex[:8]
    secure = cluster.settings(ADMIN)
    workers = {
        "plaintext-1-broker": _target(local, tag, "plain"),
        "sasl_ssl-3-brokers-rf3": _target(secure, tag, "secure"),
    }
    targets = {  # the bare loop's topics; the worker gets its own (workers)
        "plaintext-1-broker": (_target(local, tag, "plainbare"), {}),
        "sasl_ssl-3-brokers-rf3": (
            _target(secure, tag, "securebare"),
            cluster.mlflow_env(),
        ),
    }
    print(f"generating {args.events:,} events ...", flush=True)
    messages = payloads(args.events)
    state = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-security-{tag}"
    results: dict[str, dict[str, float]] = {}
    try:
        for settings in [*(s for s, _ in targets.values()), *workers.values()]:
            created, _ = create_topics(settings, timeout=30)
            assert len(created) == 6, created
            db.apply_migrations(settings)
        for name, (settings, extra) in targets.items():
            print(f"{name}: bare consume -> label -> produce loop ...", flush=True)
            bare = f"{name} bare loop"
            results[bare] = measure(
                bare,
                settings,
                settings.topics.responses,
                settings.topics.dlq,
                lambda s=settings, e=extra: _start_bare_loop(s, e, args.batch),
                messages,
                args.rate,
                args.seconds,
            )
            results[bare]["pg_rows"] = results[bare]["pg_distinct"] = float("nan")
            print(json.dumps(results[bare]), flush=True)
            print(f"{name}: persona stream (batch engine) ...", flush=True)
            settings = workers[name]  # the worker's own topics and schema
            results[name] = measure(
                name,
                settings,
                settings.topics.responses,
                settings.topics.labels,
                lambda s=settings, e=extra, n=name: _start_worker(s, e, state / n, args.batch),
                messages,
                args.rate,
                args.seconds,
            )
            results[name]["pg_rows"], results[name]["pg_distinct"] = db.label_counts(settings)
            print(json.dumps(results[name]), flush=True)
    finally:
        for settings in [*(s for s, _ in targets.values()), *workers.values()]:
            with contextlib.suppress(Exception):
                _cleanup(settings)

    plain = results["plaintext-1-broker bare loop"]
    print()
    print(
        "| target | replay events/s | vs plaintext bare loop | paced p50 ms | paced p99 ms "
        "| PostgreSQL rows = distinct |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        stored = r["pg_rows"]
        rows = "—" if stored != stored else f"{stored:,.0f} = {r['pg_distinct']:,.0f}"  # nan
        ratio = r["events_per_s"] / plain["events_per_s"]
        print(
            f"| {name} | {r['events_per_s']:,.0f} | {ratio:.2f} "
            f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {rows} |"
        )
    print(
        f"\nreplay of {args.events:,} events, paced {args.rate}/s for {args.seconds:.0f} s; "
        f"expected rows per target {args.events + int(args.rate * args.seconds):,}"
    )


if __name__ == "__main__":
    main()
