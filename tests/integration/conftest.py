"""Integration fixtures: one running stack per session (started by `make up` / `make test`),
isolation per test by unique topic names, a unique PostgreSQL schema and a unique registered
model name. A stack that does not answer fails the tests (it never skips them).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

import pytest

from personas import db
from personas.errors import ServiceUnavailable
from personas.kafka import TopicSpec, admin_config, check_kafka, ensure_topics, topic_specs
from personas.settings import Settings, TopicNames

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    """Settings of the running stack; fails (not skips) when a service does not answer."""
    settings = Settings()
    try:
        check_kafka(settings, timeout=10)
        db.check_postgres(settings)
    except ServiceUnavailable as exc:
        pytest.fail(f"the local stack is not running ({exc}); run `make up` first", pytrace=False)
    return settings


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topic_factory(stack_settings: Settings) -> Iterator[Callable[..., str]]:
    """Create uniquely named topics for one test and delete them afterwards."""
    from confluent_kafka.admin import AdminClient

    created: list[str] = []

    def make(
        prefix: str = "test", partitions: int = 1, config: dict[str, str] | None = None
    ) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        ensure_topics(stack_settings, [TopicSpec(name, partitions, config or {})])
        created.append(name)
        return name

    yield make
    if created:
        admin = AdminClient(admin_config(stack_settings))
        for future in admin.delete_topics(created, operation_timeout=10).values():
            with contextlib.suppress(Exception):  # cleanup must not mask the test's own result
                future.result(timeout=15)


@pytest.fixture
def isolated_settings(stack_settings: Settings, unique: str) -> Iterator[Settings]:
    """Settings whose six topics, PostgreSQL schema and registered model name are this test's own.

    Topics are created with the production specs (partitions, retention); the schema gets every
    migration applied. Everything is dropped afterwards.
    """
    from confluent_kafka.admin import AdminClient

    topics = TopicNames.private(unique)
    settings = stack_settings.model_copy(
        update={
            "topics": topics,
            "pg_schema": f"t_{unique}",
            "model_name": f"persona-model-{unique}",
        }
    )
    ensure_topics(settings, topic_specs(settings))
    db.apply_migrations(settings)
    yield settings
    admin = AdminClient(admin_config(settings))
    for future in admin.delete_topics(
        [s.name for s in topic_specs(settings)], operation_timeout=10
    ).values():
        with contextlib.suppress(Exception):
            future.result(timeout=15)
    with db.connect(settings, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{settings.pg_schema}" CASCADE')
    _forget_registry(settings, unique)


def _forget_registry(settings: Settings, unique: str) -> None:
    """Delete the test's registered model and its experiments, so the dev registry the user browses
    holds their models, not hundreds of test leftovers (best effort: the test has passed)."""
    from mlflow.exceptions import MlflowException

    from personas import registry

    client = registry.client(settings)
    with contextlib.suppress(MlflowException):
        client.delete_registered_model(settings.model_name)
    with contextlib.suppress(MlflowException):
        for experiment in client.search_experiments(filter_string=f"name LIKE '%{unique}%'"):
            client.delete_experiment(experiment.experiment_id)
