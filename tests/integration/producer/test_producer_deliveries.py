"""Every delivery counted against the real broker, now that successes are not reported one by one.

The publisher asks the client for failure reports only and counts a success as a message handed
over that neither failed nor was left undelivered (producer.publisher). A topic that refuses
records larger than a limit makes the broker fail some deliveries: the counts must still add up,
in both directions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from personas.catalogue import Catalogue
from personas.kafka import TopicSpec, admin_config, ensure_topics
from personas.settings import Settings
from producer.generator import MonthSpec, generate_month
from producer.publisher import publish_rows
from producer.settings import ProducerSettings
from producer.tail import consume


@pytest.fixture
def limited_topic(isolated_settings: Settings) -> Iterator[Callable[[int], str]]:
    """Makes this test's own one-partition topics refusing batches over a size; drops them."""
    from confluent_kafka.admin import AdminClient

    made: list[str] = []

    def make(max_bytes: int) -> str:
        name = f"{isolated_settings.topics.responses}-limit-{max_bytes}"
        ensure_topics(
            isolated_settings, [TopicSpec(name, 1, {"max.message.bytes": str(max_bytes)})]
        )
        made.append(name)
        return name

    yield make
    admin = AdminClient(admin_config(isolated_settings))
    for future in admin.delete_topics(made, operation_timeout=10).values():
        with contextlib.suppress(Exception):
            future.result(timeout=15)


#: One record per batch, uncompressed: a batch is ~70 bytes plus the key and the value.
ONE_PER_BATCH = {"linger.ms": 0, "batch.num.messages": 1}


def test_refused_deliveries_are_counted_as_failed_and_the_rest_as_sent(
    isolated_settings: Settings, catalogue: Catalogue, limited_topic: Callable[[int], str]
) -> None:
    rows = generate_month(MonthSpec("2025-04", 40, 2.0, 5), catalogue)
    long_ids = rows.index % 4 == 0  # 10 rows whose 64-character key and id make them ~90 B larger
    rows.loc[long_ids, "respondent_id"] = [f"{i:064d}" for i in range(int(long_ids.sum()))]
    topic = limited_topic(550)  # short batches ~510 bytes at most, long ones ~590 at least

    summary = publish_rows(
        isolated_settings,
        rows,
        topic=topic,
        producer_settings=ProducerSettings(compression="none"),
        client_overrides=ONE_PER_BATCH,
    )

    assert (summary.sent, summary.failed, summary.rows) == (30, 10, 40), summary.line()
    assert dict(summary.delivery_errors) == {"MSG_SIZE_TOO_LARGE": 10}
    got = list(
        consume(isolated_settings, topic, from_beginning=True, max_messages=30, timeout_s=20)
    )
    assert sorted(m.key or "" for m in got) == sorted(rows.loc[~long_ids, "respondent_id"])


def test_all_refused_means_none_sent(
    isolated_settings: Settings, catalogue: Catalogue, limited_topic: Callable[[int], str]
) -> None:
    rows = generate_month(MonthSpec("2025-04", 25, 2.0, 6), catalogue)
    topic = limited_topic(200)

    summary = publish_rows(isolated_settings, rows, topic=topic)

    assert (summary.sent, summary.failed) == (0, 25), summary.line()
    assert not summary.ok
