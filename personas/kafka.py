"""Kafka plumbing shared by the services: the one place client configurations are built, topic
creation, health check.

Every Kafka client of the project — producers, consumers, admin clients (confluent-kafka) and the
Faust agent engine's aiokafka clients — gets its connection settings (bootstrap list, security
protocol, SASL, TLS, pass-through properties) from :func:`client_config` or :func:`faust_broker`
here, so a secured cluster reaches every client the same way. A unit test (tests/unit/personas/
test_kafka_clients.py) fails if a client is built any other way.

Producer defaults favour throughput with safety: idempotent, acks=all, lz4, 20 ms linger and
large batches (one network round trip per batch, never per event).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from personas.dead_letters import DLQ_EXTRA_BYTES
from personas.errors import ConfigError, ServiceUnavailable
from personas.settings import Settings

if TYPE_CHECKING:
    import ssl

__all__ = [
    "TopicDrift",
    "TopicSpec",
    "admin_config",
    "aiokafka_options",
    "check_kafka",
    "client_config",
    "consumer_config",
    "create_topics",
    "ensure_topics",
    "explain_kafka_error",
    "faust_broker",
    "produce_waiting",
    "producer_config",
    "read_to_end",
    "topic_specs",
]

#: The broker's default record limit (message.max.bytes); topics without their own keep it.
BROKER_RECORD_LIMIT = 1_048_588
#: The DLQ topic's limit: a record at the broker's limit plus the dead letter's headers.
DLQ_RECORD_LIMIT = BROKER_RECORD_LIMIT + DLQ_EXTRA_BYTES

#: Topics that replays write to keep records whatever their timestamp: time-based retention
#: looks at record timestamps, so a month-old replay would be deleted at the next check.
KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": str(2 * 1024**3)}


@dataclass(frozen=True)
class TopicSpec:
    """A topic as we create it. Replication factor and ``min.insync.replicas`` left out come
    from settings (``kafka_replication_factor``, ``kafka_min_insync_replicas``)."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    replication_factor: int | None = None

    def resolved(self, settings: Settings) -> TopicSpec:
        config = dict(self.config)
        if settings.kafka_min_insync_replicas is not None:
            config.setdefault("min.insync.replicas", str(settings.kafka_min_insync_replicas))
        return TopicSpec(
            self.name,
            self.partitions,
            config,
            self.replication_factor or settings.kafka_replication_factor,
        )


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics of DESIGN.md with explicit partition counts, replication and configs."""
    t = settings.topics
    n = settings.kafka_partitions
    specs = [
        TopicSpec(t.responses, n, dict(KEEP_FOREVER)),
        TopicSpec(t.labels, n, dict(KEEP_FOREVER)),
        # A dead letter is its record's bytes plus headers: room for both (personas.dead_letters).
        TopicSpec(t.dlq, 1, {**KEEP_FOREVER, "max.message.bytes": str(DLQ_RECORD_LIMIT)}),
        TopicSpec(t.alerts, 1, dict(KEEP_FOREVER)),
        TopicSpec(t.retrain, 1, dict(KEEP_FOREVER)),
        # Compacted: the latest update per model survives; every worker reads it without a group.
        TopicSpec(t.model_updates, 1, {"cleanup.policy": "compact", "retention.ms": "-1"}),
    ]
    return [spec.resolved(settings) for spec in specs]


def _existing_file(path: Any, setting: str) -> str:
    from pathlib import Path

    if not Path(path).is_file():
        raise ConfigError(f"{setting}={path}: no such file")
    return str(path)


def client_config(settings: Settings) -> dict[str, Any]:
    """librdkafka connection properties of every client: where the cluster is and how to prove
    who we are. Secrets come from settings (or their files), never from a command line."""
    protocol = settings.kafka_security_protocol
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": protocol,
    }
    if protocol.startswith("SASL_"):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_username
        config["sasl.password"] = settings.kafka_secret()
    if protocol in ("SSL", "SASL_SSL"):
        ca = settings.kafka_ssl_ca_file
        # "probe": the system's CA bundle, for managed clusters signed by a public CA.
        config["ssl.ca.location"] = (
            _existing_file(ca, "PERSONA_KAFKA_SSL_CA_FILE") if ca is not None else "probe"
        )
        if settings.kafka_ssl_cert_file is not None and settings.kafka_ssl_key_file is not None:
            config["ssl.certificate.location"] = _existing_file(
                settings.kafka_ssl_cert_file, "PERSONA_KAFKA_SSL_CERT_FILE"
            )
            config["ssl.key.location"] = _existing_file(
                settings.kafka_ssl_key_file, "PERSONA_KAFKA_SSL_KEY_FILE"
            )
            key_password = settings.kafka_ssl_key_password.get_secret_value()
            if key_password:
                config["ssl.key.password"] = key_password
        config["ssl.endpoint.identification.algorithm"] = (
            "https" if settings.kafka_ssl_check_hostname else "none"
        )
    config.update(settings.kafka_client_properties)
    return config


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        **client_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 1_048_576,
    }
    config.update(overrides)
    return config


def produce_waiting(
    producer: Any,
    topic: str,
    value: bytes | str | None,
    key: bytes | str | None = None,
    *,
    wait_s: float = 0.05,
    **kwargs: Any,
) -> None:
    """Queue one message, serving delivery reports while the local queue is full.

    ``Producer.produce`` raises BufferError instead of blocking when its queue is full; the only
    right answer is to poll (which runs delivery callbacks and frees room) and try again. Every
    producer of the project goes through here for that. Hot loops (the stream's label output, the
    publisher) call ``producer.produce`` themselves and come here only on BufferError: a Python
    call per message costs a quarter or more of ``produce`` itself (docs/facts.md "Per-call costs").
    ``KafkaException`` (a message refused locally, e.g. too large) is the caller's to handle.
    """
    while True:
        try:
            producer.produce(topic, value, key, **kwargs)
            return
        except BufferError:
            producer.poll(wait_s)


def consumer_config(settings: Settings, group_id: str | None, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        # librdkafka stops fetching for 1 s (its default) once the local queue passes
        # queued.min.messages (100,000): a consumer that drains faster than 100k messages/s then
        # starves for most of that second. Measured (docs/facts.md): consume + decode of labels
        # 109k/s with the default, 253k/s with 10-100 ms; 0 busy-loops the fetcher. Before the
        # client properties, so PERSONA_KAFKA_CLIENT_PROPERTIES can still set it.
        "fetch.queue.backoff.ms": 100,
        **client_config(settings),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    if group_id is not None:
        config["group.id"] = group_id
    config.update(overrides)
    return config


def admin_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    config = client_config(settings)
    config.update(overrides)
    return config


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context of aiokafka (the Faust agent engine), from the same settings."""
    import ssl

    ca = settings.kafka_ssl_ca_file
    context = ssl.create_default_context(
        cafile=_existing_file(ca, "PERSONA_KAFKA_SSL_CA_FILE") if ca is not None else None
    )
    context.check_hostname = settings.kafka_ssl_check_hostname
    if settings.kafka_ssl_cert_file is not None and settings.kafka_ssl_key_file is not None:
        context.load_cert_chain(
            _existing_file(settings.kafka_ssl_cert_file, "PERSONA_KAFKA_SSL_CERT_FILE"),
            _existing_file(settings.kafka_ssl_key_file, "PERSONA_KAFKA_SSL_KEY_FILE"),
            settings.kafka_ssl_key_password.get_secret_value() or None,
        )
    return context


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of an aiokafka client (``AIOKafkaConsumer(topic, **options)``) that
    connect it the way :func:`client_config` connects confluent-kafka's."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_servers,
        "security_protocol": protocol,
    }
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(settings)
    if protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_username
        options["sasl_plain_password"] = settings.kafka_secret()
    return options


def faust_broker(settings: Settings) -> dict[str, Any]:
    """``faust.App`` keyword arguments that connect its aiokafka clients the way
    :func:`client_config` connects confluent-kafka's: broker list and credentials. librdkafka
    pass-through properties have no aiokafka equivalent and are not applied here."""
    import faust

    protocol = settings.kafka_security_protocol
    context = _ssl_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    credentials: Any = None
    if protocol.startswith("SASL_"):
        credentials = faust.SASLCredentials(
            username=settings.kafka_username,
            password=settings.kafka_secret(),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    elif context is not None:
        credentials = faust.SSLCredentials(context)
    return {
        "broker": [f"kafka://{server}" for server in settings.kafka_servers],
        "broker_credentials": credentials,
    }


#: What librdkafka's error text means for the person reading it, most specific first:
#: (substring of the error, what happened, the fix).
_DIAGNOSES: tuple[tuple[str, str, str], ...] = (
    (
        "certificate verify failed",
        "TLS: the broker's certificate is not trusted",
        "set PERSONA_KAFKA_SSL_CA_FILE to the CA that signed the brokers",
    ),
    (
        "hostname",
        "TLS: the broker's certificate does not name this host",
        "connect by a name the certificate lists, or PERSONA_KAFKA_SSL_CHECK_HOSTNAME=false",
    ),
    (
        "invalid credentials",
        "authentication failed (wrong username or password)",
        "check PERSONA_KAFKA_USERNAME and PERSONA_KAFKA_PASSWORD(_FILE)",
    ),
    (
        "Authentication failed",
        "authentication failed",
        "check PERSONA_KAFKA_SASL_MECHANISM, PERSONA_KAFKA_USERNAME and the password",
    ),
    (
        "Unsupported SASL mechanism",
        "the broker does not offer this SASL mechanism",
        "set PERSONA_KAFKA_SASL_MECHANISM to one the listener enables",
    ),
    (
        "connecting to a PLAINTEXT broker listener",
        "TLS handshake refused: that listener does not speak TLS",
        "check PERSONA_KAFKA_SECURITY_PROTOCOL and the port of the TLS listener",
    ),
    (
        "SSL handshake failed",
        "TLS handshake failed",
        "is this a TLS listener? check PERSONA_KAFKA_SECURITY_PROTOCOL and the port",
    ),
    (
        "Disconnected while requesting ApiVersion",
        "the broker closed the connection at the first request",
        "the listener probably expects another protocol: check PERSONA_KAFKA_SECURITY_PROTOCOL",
    ),
    (
        "Connection refused",
        "nothing listens there",
        "check PERSONA_KAFKA_BOOTSTRAP_SERVERS; local stack: `make up`",
    ),
)


def explain_kafka_error(errors: list[str]) -> tuple[str, str]:
    """(what happened, the fix) for the errors librdkafka reported while connecting."""
    text = " | ".join(errors)
    for needle, what, fix in _DIAGNOSES:
        if needle.lower() in text.lower():
            return what, fix
    first = errors[0] if errors else "no answer"
    return first, "is the cluster up and the address right? (`persona doctor`; local: `make up`)"


class _ErrorLog:
    """librdkafka's error callback, kept: the first errors say why a request timed out."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def __call__(self, err: Any) -> None:
        if len(self.errors) < 20:
            self.errors.append(str(err.str() if hasattr(err, "str") else err))


def connected_admin(
    settings: Settings, timeout: float = 5.0
) -> tuple[Any, Callable[[], list[str]]]:
    """An AdminClient that has answered one metadata request, and its error log; raises
    ServiceUnavailable with the reason and the fix (untrusted CA, wrong password, …)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors = _ErrorLog()
    # log_level 0: a dead broker is reported once, by us, not by librdkafka every 50 ms.
    admin = AdminClient(admin_config(settings, log_level=0, error_cb=errors))
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        admin.poll(0)  # error callbacks are served by poll: they say why the request failed
        what, fix = explain_kafka_error([*errors.errors, str(exc.args[0])])
        raise ServiceUnavailable("Kafka", settings.kafka_bootstrap, what, fix) from None
    return admin, lambda: list(errors.errors)


def check_kafka(settings: Settings, timeout: float = 5.0) -> None:
    """Raise ServiceUnavailable naming the cluster and the fix if it does not answer."""
    connected_admin(settings, timeout)


@dataclass(frozen=True)
class TopicDrift:
    """A topic that exists with other settings than the ones configured."""

    name: str
    differences: list[str]
    #: Configs to set to make it match (partitions and replication are never changed here).
    configs: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.name}: " + ", ".join(self.differences)


def ensure_topics(
    settings: Settings, specs: list[TopicSpec] | None = None, timeout: float = 15.0
) -> list[str]:
    """Create missing topics (idempotent); returns the names created."""
    created, _ = create_topics(settings, specs, timeout)
    return created


def create_topics(
    settings: Settings,
    specs: list[TopicSpec] | None = None,
    timeout: float = 15.0,
    *,
    fix_configs: bool = False,
) -> tuple[list[str], list[TopicDrift]]:
    """Create the topics that are missing; returns the names created and the topics that
    already exist with other partitions, replication factor or configs (reported, never
    altered: that is the cluster owner's decision). Only missing topics are asked for, so a
    service whose user may not create topics starts fine on a cluster set up by an admin."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    admin, _ = connected_admin(settings, timeout=timeout)
    wanted = [s.resolved(settings) for s in (topic_specs(settings) if specs is None else specs)]
    present = set(admin.list_topics(timeout=timeout).topics)
    missing = [s for s in wanted if s.name not in present]
    created = []
    futures = (
        admin.create_topics(
            [
                NewTopic(s.name, s.partitions, s.replication_factor or 1, config=s.config)
                for s in missing
            ],
            request_timeout=timeout,
        )
        if missing
        else {}
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:  # created meanwhile
                continue
            if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise ServiceUnavailable(
                    "Kafka",
                    settings.kafka_bootstrap,
                    f"topic {name} is not visible to user {settings.kafka_username or '(anonymous)'}"
                    " (missing, or no ACL to describe it) and that user may not create it",
                    "create the topics as an admin: `persona topics create`",
                ) from None
            raise ServiceUnavailable(
                "Kafka", settings.kafka_bootstrap, f"creating topic {name}: {error.str()}"
            ) from None
    existing = [s for s in wanted if s.name not in created]
    drift = topic_drift(admin, existing, timeout)
    if fix_configs and any(d.configs for d in drift):
        _set_configs(admin, [d for d in drift if d.configs], timeout)
        drift = topic_drift(admin, existing, timeout)
    return created, drift


def _set_configs(admin: Any, drift: list[TopicDrift], timeout: float) -> None:
    """Set the configs an upgrade changed (e.g. the DLQ's max.message.bytes) on existing topics;
    only the keys named, never partitions or replication."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
    )

    resources = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            d.name,
            incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in d.configs.items()
            ],
        )
        for d in drift
    ]
    for resource, future in admin.incremental_alter_configs(
        resources, request_timeout=timeout
    ).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            raise ServiceUnavailable(
                "Kafka", "the cluster", f"setting configs of {resource.name}: {exc.args[0].str()}"
            ) from None


def topic_drift(
    admin: Any,
    specs: list[TopicSpec],
    timeout: float = 15.0,
    unreadable: list[str] | None = None,
) -> list[TopicDrift]:
    """Compare existing topics with their specs: partitions, replication factor, configs.
    Topics whose configs this user may not read (no DESCRIBE_CONFIGS: a service user) are
    compared on partitions and replication only, and named in ``unreadable``."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

    if not specs:
        return []
    metadata = admin.list_topics(timeout=timeout).topics
    resources = {s.name: ConfigResource(ConfigResource.Type.TOPIC, s.name) for s in specs}
    futures = admin.describe_configs(list(resources.values()), request_timeout=timeout)
    drift = []
    for spec in specs:
        differences = []
        topic = metadata.get(spec.name)
        if topic is not None and topic.partitions:
            if len(topic.partitions) != spec.partitions:
                differences.append(f"{len(topic.partitions)} partitions (want {spec.partitions})")
            rf = min(len(p.replicas) for p in topic.partitions.values())
            if spec.replication_factor is not None and rf != spec.replication_factor:
                differences.append(f"replication factor {rf} (want {spec.replication_factor})")
        try:
            entries = futures[resources[spec.name]].result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise ServiceUnavailable(
                    "Kafka", "the cluster", f"configs of {spec.name}: {exc.args[0].str()}"
                ) from None
            if unreadable is not None:
                unreadable.append(spec.name)
            entries = {}
        configs = {}
        for key, wanted in spec.config.items():
            entry = entries.get(key)
            if entry is not None and str(entry.value) != wanted:
                differences.append(f"{key}={entry.value} (want {wanted})")
                configs[key] = wanted
        if differences:
            drift.append(TopicDrift(spec.name, differences, configs))
    return drift


def read_to_end(
    settings: Settings, topic: str, timeout: float = 60.0, start: dict[int, int] | None = None
) -> list[Any]:
    """Every message (confluent-kafka ``Message``: key, value, partition, offset, headers) of
    ``topic`` from ``start`` (partition → offset; default, and for partitions it lacks, the
    beginning) up to its end offsets taken now, without joining a group or committing anything
    (the group name is under the monitor's ACL prefix). For tools, accounting (the soak, tests)
    and the monitor's recovery read, not for the services' hot paths."""
    import time
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    from personas.errors import ServiceUnavailable

    consumer = Consumer(consumer_config(settings, f"persona-monitor-read-{uuid.uuid4().hex[:8]}"))
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
        first = start or {}
        ends: dict[int, int] = {}
        for p in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if high > max(low, first.get(p, 0)):
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, first.get(p, 0)) for p in ends])
        got: list[Any] = []
        seen = {p: first.get(p, 0) for p in ends}
        deadline = time.monotonic() + timeout
        while any(seen[p] < ends[p] for p in ends):
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    "Kafka", settings.kafka_bootstrap, f"read {topic} to {seen} of {ends} only"
                )
            for msg in consumer.consume(1000, 0.5):
                partition, offset = msg.partition(), msg.offset()
                if msg.error() is None and partition is not None and offset is not None:
                    got.append(msg)
                    seen[partition] = offset + 1
        return got
    finally:
        consumer.close()
