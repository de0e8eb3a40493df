"""The whole loop on the secured three-node cluster, each service as its own SCRAM user holding
exactly the ACLs of personas.access: publish → stream → persona-labels + PostgreSQL (over TLS) →
monitor → drift alert → retrain → new champion in the authenticated MLflow. One broker is
SIGKILLed mid-stream and brought back: every event lands once, no service restarts.

Topics have replication factor 3 and min.insync.replicas 2, so with one broker down every
acknowledged write is still on two replicas; the producers are idempotent, so the retries after
the broker's death duplicate nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fault_tools import free_port, wait_for
from loop_tools import label_rows, run_persona, topic_messages

from infra.demo.services import ChildService, persona_argv
from infra.stack.cluster import ADMIN, Cluster, kill_node, start_node
from personas import db
from personas.access import acl_bindings
from personas.kafka import admin_config, create_topics, topic_specs
from personas.settings import Settings, TopicNames, settings_env

EVENTS = 2400  # February, drifted (std 3.1) against a January reference (std 2)
RATE = 160  # events/s: the stream runs ~15 s, long enough to lose and regain a broker in it
KILLED = 2


@dataclass
class Loop:
    """One test's namespace on the cluster: its topics, schema and model, and the ACLs of
    personas.access for those topic names, granted to the service users."""

    cluster: Cluster
    admin: Settings
    unique: str

    def as_user(self, user: str) -> Settings:
        return self.cluster.settings(user).model_copy(
            update={
                "topics": self.admin.topics,
                "pg_schema": self.admin.pg_schema,
                "model_name": self.admin.model_name,
            }
        )

    def env(self, user: str, **extra: str) -> dict[str, str]:
        env = settings_env(self.as_user(user))
        env.update(self.cluster.mlflow_env())
        env.update(extra)
        return env


@pytest.fixture
def loop(cluster: Cluster, cluster_admin: Settings, unique: str) -> Iterator[Loop]:
    from confluent_kafka.admin import AdminClient

    admin = cluster_admin.model_copy(
        update={
            "topics": TopicNames.private(f"c{unique}"),
            "pg_schema": f"c_{unique}",
            "model_name": f"persona-model-c{unique}",
        }
    )
    created, drift = create_topics(admin, timeout=30)
    assert len(created) == 6 and not drift
    # The ACLs for this test's topic names; the group and Faust-prefix ones are the cluster's
    # own (the same names for every test) and must outlive the test.
    shared = {binding for _, binding in acl_bindings(cluster_admin)}
    bindings = [binding for _, binding in acl_bindings(admin) if binding not in shared]
    client = AdminClient(admin_config(admin))
    for future in client.create_acls(bindings, request_timeout=30).values():
        future.result(timeout=60)
    db.apply_migrations(admin)
    try:
        yield Loop(cluster, admin, unique)
    finally:
        from confluent_kafka.admin import AclBindingFilter

        filters = [
            AclBindingFilter(
                b.restype, b.name, b.resource_pattern_type, b.principal, b.host,
                b.operation, b.permission_type,
            )
            for b in bindings
        ]  # fmt: skip
        for future in client.delete_acls(filters, request_timeout=30).values():
            future.result(timeout=60)  # a leak would pile up grants on the shared cluster
        for future in client.delete_topics(
            [s.name for s in topic_specs(admin)], operation_timeout=30
        ).values():
            with contextlib.suppress(Exception):
                future.result(timeout=60)
        with db.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{admin.pg_schema}" CASCADE')
        from mlflow.exceptions import MlflowException

        from personas import registry

        with contextlib.suppress(MlflowException), _mlflow_env(cluster):
            registry.client(admin).delete_registered_model(admin.model_name)


@contextlib.contextmanager
def _mlflow_env(cluster: Cluster) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in cluster.mlflow_env().items():
            mp.setenv(name, value)
        yield


@pytest.mark.timeout(600)
def test_the_loop_survives_a_broker_killed_mid_stream(loop: Loop, tmp_path: Path) -> None:
    data = tmp_path / "data"
    admin_env = loop.env(ADMIN)
    for month, std, n, seed in (("2025-01", 2.0, 1500, 11), ("2025-02", 3.1, EVENTS, 12)):
        run_persona(
            "generate", "--month", month, "--n", str(n), "--std", str(std),
            "--seed", str(seed), "--out", str(data / f"{month}.parquet"),
            env=admin_env,
        )  # fmt: skip
    # The champion's registration needs the registry's write rights: the admin does it once.
    run_persona("train", "bootstrap", "--reference", str(data / "2025-01.parquet"), env=admin_env)

    logs = tmp_path / "logs"
    services = [
        ChildService(
            "stream",
            persona_argv("stream", "--web-port", str(free_port())),
            logs / "stream.log",
            loop.env("stream", PERSONA_STREAM_STATE_DIR=str(tmp_path / "stream-state")),
        ),
        ChildService(
            "monitor",
            persona_argv(
                "monitor", "--window", "7d", "--group-id", f"persona-monitor-{loop.unique}"
            ),
            logs / "monitor.log",
            loop.env("monitor", PERSONA_MONITOR_REPORTS_DIR=str(tmp_path / "reports")),
        ),
        ChildService(
            "trainer",
            persona_argv("trainer"),
            logs / "trainer.log",
            loop.env("trainer", PERSONA_TRAINER_GROUP_ID=f"persona-trainer-{loop.unique}"),
        ),
    ]
    publisher: ChildService | None = None
    try:
        for service in services:
            service.start()
        services[0].wait_for_log("persona stream worker ready", 180)
        pids = {s.name: s.process.pid for s in services if s.process is not None}

        publisher = ChildService(
            "publish",
            persona_argv("publish", str(data / "2025-02.parquet"), "--rate", str(RATE)),
            logs / "publish.log",
            loop.env("producer"),
        )
        publisher.start()
        # Mid-stream: a broker dies while events flow, and comes back while they still flow.
        wait_for(lambda: label_rows(loop.admin)[0] >= EVENTS // 5, 180, "the first labelled events")
        assert kill_node(loop.cluster.base, KILLED) is not None
        killed_at = label_rows(loop.admin)[0]
        wait_for(
            lambda: label_rows(loop.admin)[0] >= killed_at + EVENTS // 5,
            180,
            "labelling to go on with a broker down",
        )
        assert start_node(loop.cluster.base, KILLED) == "started"
        assert publisher.process is not None
        assert publisher.process.wait(300) == 0, publisher.log.read_text()

        # Every event exactly once in PostgreSQL and on persona-labels.
        wait_for(lambda: label_rows(loop.admin)[0] >= EVENTS, 300, f"{EVENTS} rows in PostgreSQL")
        assert label_rows(loop.admin) == (EVENTS, EVENTS)
        labels = topic_messages(loop.admin, loop.admin.topics.labels)
        assert len({label["event_id"] for label in labels}) == EVENTS

        # The monitor judged February's windows and found the drift; the trainer retrained
        # and promoted version 2 in the authenticated registry.
        def reports() -> list[dict[str, Any]]:
            return [
                r for r in topic_messages(loop.admin, loop.admin.topics.alerts)
                if r.get("kind") == "drift_report"
            ]  # fmt: skip

        found = wait_for(
            lambda: [r for r in reports() if r["status"] == "drift"], 240, "a drift report"
        )
        assert found[0]["window_start"] >= "2025-02-01"
        updates = wait_for(
            lambda: [
                u for u in topic_messages(loop.admin, loop.admin.topics.model_updates)
                if u["version"] == 2
            ],
            300,
            "the trainer's version 2 on model-updates",
        )  # fmt: skip
        assert updates[0]["previous_version"] == 1
        windows = [r["window_id"] for r in reports()]
        assert len(windows) == len(set(windows)), "a window was reported twice"

        # Nobody needed a restart.
        for service in services:
            service.check_alive()
            assert service.process is not None and service.process.pid == pids[service.name]
    finally:
        if publisher is not None:
            publisher.stop()
        for service in services:
            service.stop()
        with contextlib.suppress(Exception):
            start_node(loop.cluster.base, KILLED)  # never leave the shared cluster short


@pytest.mark.timeout(420)
def test_the_faust_agent_engine_labels_over_sasl_ssl(loop: Loop, tmp_path: Path) -> None:
    """The agent engine's aiokafka clients get the same TLS context and SCRAM credentials
    (personas.kafka.faust_broker) and the stream user's ACLs suffice for Faust's own topics."""
    data = tmp_path / "data"
    events = 600
    run_persona(
        "generate", "--month", "2025-01", "--n", str(events), "--std", "2",
        "--seed", "21", "--out", str(data / "jan.parquet"), env=loop.env(ADMIN),
    )  # fmt: skip
    worker = ChildService(
        "stream",
        persona_argv("stream", "--engine", "agent", "--web-port", str(free_port())),
        tmp_path / "stream.log",
        loop.env("stream", PERSONA_STREAM_STATE_DIR=str(tmp_path / "state")),
    )
    try:
        worker.start()
        worker.wait_for_log("persona stream worker ready", 180)
        run_persona("publish", str(data / "jan.parquet"), env=loop.env("producer"))
        wait_for(
            lambda: label_rows(loop.admin)[0] >= events, 240, f"{events} rows from the agent engine"
        )
        assert label_rows(loop.admin) == (events, events)
        worker.check_alive()
    finally:
        worker.stop()
