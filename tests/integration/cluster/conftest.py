"""Fixtures of the tests that run against the cluster profile (`make up-cluster`; `make test` starts
it). They share one running cluster; a cluster that does not answer fails them, never skips."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

import pytest

from infra.stack.cluster import ADMIN, Cluster
from infra.stack.cluster import status as cluster_status
from personas.errors import ServiceUnavailable
from personas.kafka import TopicSpec, admin_config, check_kafka, create_topics
from personas.settings import Settings


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The running cluster profile: its services, files and users."""
    running = Cluster(Settings())
    down = [s.name for s in cluster_status(running.base) if not s.answers]
    if down:
        pytest.fail(
            f"the cluster profile is not running ({', '.join(down)} down); "
            "run `make up-cluster` first",
            pytrace=False,
        )
    return running


@pytest.fixture(scope="session")
def cluster_admin(cluster: Cluster) -> Settings:
    """Settings of the cluster's admin (super user): SASL_SSL, SCRAM-SHA-512, the cluster's CA."""
    settings = cluster.settings(ADMIN)
    try:
        check_kafka(settings, timeout=20)
    except ServiceUnavailable as exc:
        pytest.fail(f"the cluster does not answer its admin: {exc}", pytrace=False)
    return settings


@pytest.fixture
def cluster_topic(cluster_admin: Settings) -> Iterator[Callable[..., str]]:
    """Create uniquely named topics on the cluster (replication factor 3) and delete them after."""
    from confluent_kafka.admin import AdminClient

    created: list[str] = []

    def make(prefix: str = "cluster-test", partitions: int = 3) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        spec = TopicSpec(
            name,
            partitions,
            {"min.insync.replicas": str(cluster_admin.kafka_min_insync_replicas)},
            cluster_admin.kafka_replication_factor,
        )
        create_topics(cluster_admin, [spec], timeout=30)
        created.append(name)
        return name

    yield make
    if created:
        admin = AdminClient(admin_config(cluster_admin))
        for future in admin.delete_topics(created, operation_timeout=30).values():
            with contextlib.suppress(Exception):  # cleanup must not mask the test's own result
                future.result(timeout=60)
