"""`persona trainer`: the consumer loop over ``retrain-commands``.

One consumer in group ``PERSONA_TRAINER_GROUP_ID`` handles one command at a time and commits its
offset only after the decision is durable (ledger row, MLflow run, alias, events). Commands that
arrive while a fit runs wait in Kafka — queued, not lost — and a crash mid-fit redelivers the
command, which the ledger lets through because it never reached a final status.

When PostgreSQL, MLflow or Kafka do not answer, the command is not dropped: the consumer seeks
back to it and retries after ``retry_seconds`` while still polling (so the group does not evict
it). An unexpected error in the fit itself marks the command ``failed`` and publishes a
TrainerAlert(retrain_failed) instead of retrying forever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from personas.doctor import require_kafka
from personas.errors import ServiceRefused, ServiceUnavailable
from personas.kafka import consumer_config
from personas.metrics_endpoint import serve_metrics
from personas.schemas import RetrainCommand
from personas.settings import Settings
from trainer.events import Publisher
from trainer.job import Job
from trainer.metrics import TrainerMetrics
from trainer.retrain import Outcome, handle_command, record_failure
from trainer.settings import TrainerSettings

__all__ = ["is_transient", "run_trainer"]

log = logging.getLogger(__name__)


def is_transient(exc: BaseException) -> bool:
    """A dependency outage (retry later) rather than a problem with the command itself.

    Deliberately narrow. Every MLflow call of the trainer turns a server that does not answer
    into ServiceUnavailable where it is made (trainer/register.py, personas/registry.py), and
    ``registry.load_version`` does so even where MLflow itself calls a refused download "does not
    exist". A refusal (``ServiceRefused``: MLflow answered 401/403 or "invalid parameter", the
    one translation in ``registry.mlflow_unavailable``) and a raw MlflowException are not
    outages: the command is recorded as ``failed`` (with an alert) instead of retried forever.
    """
    import psycopg

    if isinstance(exc, ServiceRefused):  # MLflow answered "no" (401/403, bad request)
        return False
    return isinstance(exc, ServiceUnavailable | psycopg.OperationalError | ConnectionError)


def run_trainer(
    settings: Settings,
    trainer_settings: TrainerSettings | None = None,
    *,
    stop: threading.Event | None = None,
    max_commands: int | None = None,
    poll_timeout: float = 1.0,
    retry_seconds: float | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    metrics: TrainerMetrics | None = None,
) -> int:
    """Consume retrain commands until ``stop`` is set (or ``max_commands`` were handled).

    ``retry_seconds`` (default ``TrainerSettings.retry_seconds``) is the pause before a command
    whose dependency did not answer is read again. ``metrics`` (default: a new one) is served
    at ``TrainerSettings.metrics_port`` while the loop runs.
    """
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from personas import db

    ts = trainer_settings or TrainerSettings()
    pause = ts.retry_seconds if retry_seconds is None else retry_seconds
    stop = stop or threading.Event()
    db.apply_migrations(settings)
    require_kafka(settings, "trainer")
    consumer: Any = Consumer(
        consumer_config(
            settings,
            ts.group_id,
            **{
                "max.poll.interval.ms": ts.max_poll_interval_ms,
                "session.timeout.ms": ts.session_timeout_ms,
                "enable.partition.eof": False,
            },
        )
    )
    consumer.subscribe([settings.topics.retrain])
    metrics = metrics or TrainerMetrics()
    endpoint = serve_metrics(
        metrics.registry, ts.metrics_host, ts.metrics_port, setting="PERSONA_TRAINER_METRICS_PORT"
    )
    publisher = Publisher(settings)
    handled = 0
    _warm_up()
    log.info("trainer listening on %s (group %s)", settings.topics.retrain, ts.group_id)
    try:
        while not stop.is_set():
            msg = consumer.poll(poll_timeout)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", msg.error())
                continue
            started = time.monotonic()
            outcome = _handle_message(settings, ts, publisher, msg)
            if outcome is None:  # dependency down: read the same command again after a pause
                metrics.retries.inc()
                consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
                stop.wait(pause)
                continue
            consumer.commit(message=msg, asynchronous=False)
            handled += 1
            if isinstance(outcome, Outcome):
                metrics.handled(outcome, time.monotonic() - started)
            else:
                metrics.invalid_command()
            if on_outcome is not None and isinstance(outcome, Outcome):
                on_outcome(outcome)
            if max_commands is not None and handled >= max_commands:
                break
    finally:
        consumer.close()
        publisher.close()
        if endpoint is not None:
            endpoint.close()
    log.info("trainer stopped after %d command(s)", handled)
    return handled


def _warm_up() -> None:
    """Import the heavy libraries before the first command, not during it: MLflow, sklearn and
    pandas take ~10 s to import on a loaded 2-core machine, which would delay the first retrain
    (and so the hot swap) by that much."""
    t0 = time.monotonic()
    import mlflow  # noqa: F401
    import pandas  # noqa: F401
    import sklearn.cluster
    import sklearn.metrics  # noqa: F401

    log.info("trainer ready (libraries loaded in %.1f s)", time.monotonic() - t0)


def _handle_message(
    settings: Settings, ts: TrainerSettings, publisher: Publisher, msg: Any
) -> Outcome | bool | None:
    """Outcome (or True for an unusable message) when done, None to retry later."""
    try:
        cmd = RetrainCommand.model_validate_json(msg.value() or b"")
    except ValidationError as exc:
        reason = f"unusable retrain command at offset {msg.offset()}: {exc.errors()[0]['msg']}"
        log.error(reason)
        try:
            Job(settings, ts, publisher).alert("retrain_failed", reason)
        except ServiceUnavailable:
            return None
        return True
    try:
        return handle_command(settings, cmd, trainer_settings=ts, publisher=publisher)
    except Exception as exc:
        if is_transient(exc):
            log.warning("command %s: %s; will retry", cmd.command_id, exc)
            return None
        log.exception("command %s failed", cmd.command_id)
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        job = Job(settings, ts, publisher, cmd.command_id)
        try:
            return record_failure(
                job, reason, None, message=f"retrain failed, champion unchanged: {reason}"
            )
        except Exception as again:
            if is_transient(again):
                return None
            raise
