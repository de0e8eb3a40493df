"""The cluster profile itself: three SASL_SSL nodes that verify and are verified, replicate, refuse
strangers, wrong passwords and users without ACLs; PostgreSQL only over TLS; MLflow only with a
login; no secret on a command line; `up` idempotent and able to bring back a killed node.

They share the one running cluster (`make up-cluster`; `make test` starts it)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.stack.cluster import ADMIN, NOACL, Cluster, kill_node
from infra.stack.cluster import status as cluster_status
from infra.stack.process import wait_until
from personas.kafka import (
    admin_config,
    check_kafka,
    consumer_config,
    explain_kafka_error,
    producer_config,
)
from personas.settings import Settings

PERSONA = str(Path(sys.executable).parent / "persona")


def _brokers(settings: Settings) -> set[int]:
    from confluent_kafka.admin import AdminClient

    return set(AdminClient(admin_config(settings)).list_topics(timeout=20).brokers)


def test_admin_reaches_all_three_nodes_over_sasl_ssl_with_hostname_verification(
    cluster: Cluster, cluster_admin: Settings
) -> None:
    config = admin_config(cluster_admin)
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["ssl.endpoint.identification.algorithm"] == "https"
    assert _brokers(cluster_admin) == {1, 2, 3}
    # client.env says the same as cluster_settings (a client reading only the file gets there).
    from_file = Settings(_env_file=cluster.env_file(ADMIN))
    assert from_file.kafka_servers == cluster_admin.kafka_servers
    assert from_file.kafka_password_file == cluster_admin.kafka_password_file
    # What hostname verification checks: the certificate names 127.0.0.1, and nothing else we
    # could be fooled into accepting.
    context = ssl.create_default_context(cafile=str(cluster.certs.ca))
    host, port = cluster_admin.kafka_servers[0].split(":")
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError, match="match"),
    ):
        context.wrap_socket(raw, server_hostname="kafka.example.com")


def test_a_topic_is_replicated_on_three_nodes(
    cluster_admin: Settings, cluster_topic: Callable[..., str]
) -> None:
    from confluent_kafka.admin import AdminClient

    topic = cluster_topic(partitions=3)
    admin = AdminClient(admin_config(cluster_admin))

    def fully_replicated() -> bool:
        partitions = admin.list_topics(topic, timeout=20).topics[topic].partitions.values()
        return len(partitions) == 3 and all(
            len(p.replicas) == 3 and len(p.isrs) == 3 for p in partitions
        )

    assert wait_until(fully_replicated, 60, 1.0), "partitions never reached 3 in-sync replicas"


def _refusal(settings: Settings) -> str:
    """What the cluster says to a client with these settings: librdkafka's first errors, waited
    for as they come (not a fixed timeout), explained the way every command explains them."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[str] = []
    admin = AdminClient(
        admin_config(settings, log_level=0, error_cb=lambda e: errors.append(e.str()))
    )

    def refused() -> bool:
        try:
            admin.list_topics(timeout=1)
        except KafkaException:
            pass
        else:
            raise AssertionError("the cluster answered a client it should refuse")
        admin.poll(0)  # serves the error callback
        return any("Broker transport failure" not in e for e in errors)

    assert wait_until(refused, 60, 0.1), f"no refusal, only {errors}"
    what, _fix = explain_kafka_error(errors)
    return what


def test_a_wrong_password_is_refused(cluster_admin: Settings) -> None:
    wrong = Settings.model_validate(
        {**cluster_admin.model_dump(), "kafka_password_file": None, "kafka_password": "wrong"}
    )
    assert "authentication failed" in _refusal(wrong)


def test_a_client_that_trusts_another_ca_is_refused(
    cluster: Cluster, cluster_admin: Settings
) -> None:
    stranger = cluster_admin.model_copy(update={"kafka_ssl_ca_file": cluster.certs.untrusted_ca})
    assert "not trusted" in _refusal(stranger)


def test_a_user_without_acls_can_neither_write_nor_read_a_topic(
    cluster: Cluster, cluster_topic: Callable[..., str]
) -> None:
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

    topic = cluster_topic(partitions=1)
    noacl = cluster.settings(NOACL)
    check_kafka(noacl, timeout=20)  # a valid login: it is the ACLs that refuse it
    errors: list[KafkaError | None] = []
    # Not idempotent: an idempotent producer would first be refused a producer id (a cluster
    # ACL), which is the same refusal one step earlier.
    producer = Producer(producer_config(noacl, **{"enable.idempotence": False}))
    producer.produce(topic, b"x", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(30)
    assert [e.code() if e else None for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]

    # Reading: the topic is not even visible to it (librdkafka then never fetches), and its
    # consumer group is refused.
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient(admin_config(noacl)).list_topics(topic, timeout=20)
    hidden = metadata.topics[topic].error
    assert hidden is not None and hidden.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    consumer = Consumer(consumer_config(noacl, "persona-test-noacl"))
    codes: list[int] = []

    def refused() -> bool:
        msg = consumer.poll(0.5)
        if msg is not None:
            error = msg.error()
            codes.append(error.code() if error is not None else KafkaError.NO_ERROR)
        return bool(codes)

    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        assert wait_until(refused, 60, 0.0), "reading was neither refused nor served"
        assert codes == [KafkaError.GROUP_AUTHORIZATION_FAILED]
    finally:
        consumer.close()


def test_the_acls_of_personas_access_are_in_place_and_noacl_has_none(cluster: Cluster) -> None:
    existing = set(cluster.existing_acls())
    assert set(cluster.desired_acls()) <= existing
    principals = {b.principal for b in existing}
    assert f"User:{NOACL}" not in principals
    assert principals <= {f"User:{u}" for u in cluster.users}


def test_postgres_refuses_plain_tcp_and_accepts_verify_full(
    cluster: Cluster, cluster_admin: Settings
) -> None:
    import psycopg
    from psycopg.conninfo import make_conninfo

    params = cluster_admin.pg_params()
    assert params["sslmode"] == "verify-full"
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(make_conninfo(**{**params, "sslmode": "disable"}), connect_timeout=10)
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(
            make_conninfo(**{**params, "sslrootcert": str(cluster.certs.untrusted_ca)}),
            connect_timeout=10,
        )
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(make_conninfo(**{**params, "password": "wrong"}), connect_timeout=10)
    with psycopg.connect(make_conninfo(**params), connect_timeout=10) as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row == (True,)


def test_mlflow_refuses_anonymous_requests_and_accepts_the_admin(
    cluster: Cluster, cluster_admin: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = cluster_admin.tracking_uri + "/api/2.0/mlflow/experiments/search?max_results=1"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=30)
    assert refused.value.code == 401

    from mlflow.tracking import MlflowClient

    for key, value in cluster.mlflow_env().items():
        monkeypatch.setenv(key, value)
    client = MlflowClient(tracking_uri=cluster_admin.tracking_uri)
    assert client.search_experiments(max_results=1) is not None


def test_no_secret_on_a_command_line_or_in_a_log(cluster: Cluster) -> None:
    secrets = [p.read_text().strip() for p in sorted(cluster.secrets.folder.iterdir())]
    assert len(secrets) >= len(cluster.users) + 3
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        assert not any(s in text for s in secrets), f"a secret is on the command line of {cmdline}"
    for log in cluster.layout.log_file("x").parent.iterdir():
        if log.is_file():
            text = log.read_text(errors="replace")
            assert not any(s in text for s in secrets), f"a secret is in {log}"
    private = [
        *cluster.secrets.folder.iterdir(),
        cluster.certs.ca_key,
        cluster.certs.broker_key,
        cluster.certs.broker_keystore,
        cluster.certs.postgres_key,
        *(cluster.env_file(u) for u in cluster.users),
    ]
    for path in private:
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"


def _up() -> str:
    out = subprocess.run(
        [PERSONA, "stack", "up", "--profile", "cluster"],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PERSONA_STACK_PROFILE"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _pids(cluster: Cluster) -> dict[str, int | None]:
    return {s.name: s.pid for s in cluster_status(cluster.base)}


def test_up_again_is_a_no_op_and_brings_back_a_killed_node(
    cluster: Cluster, cluster_admin: Settings, cluster_topic: Callable[..., str]
) -> None:
    from confluent_kafka import Producer

    before = _pids(cluster)
    assert _up().count("already running") == 5
    assert _pids(cluster) == before

    topic = cluster_topic(partitions=1)
    killed = kill_node(cluster.base, 2)
    assert killed == before["kafka-2"]
    rows = {s.name: s for s in cluster_status(cluster.base)}
    assert rows["kafka-2"].pid is None and not rows["kafka-2"].answers

    # Two of three nodes are a quorum and an in-sync majority: writes with acks=all go on.
    delivered: list[object] = []
    producer = Producer(producer_config(cluster_admin))
    producer.produce(topic, b"while node 2 is down", on_delivery=lambda e, _m: delivered.append(e))
    producer.flush(60)
    assert delivered == [None]

    out = _up()
    assert "kafka-2   started" in out and out.count("already running") == 4
    after = _pids(cluster)
    assert after["kafka-2"] not in (None, killed)
    assert {k: v for k, v in after.items() if k != "kafka-2"} == {
        k: v for k, v in before.items() if k != "kafka-2"
    }
    assert _brokers(cluster_admin) == {1, 2, 3}
    status = json.loads(
        subprocess.run(
            [PERSONA, "stack", "status", "--profile", "cluster", "--json", "--check"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    )
    assert [s["name"] for s in status["services"]] == [
        "postgres",
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "mlflow",
    ]
    assert status["kafka_bootstrap"] == cluster_admin.kafka_bootstrap
