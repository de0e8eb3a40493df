"""Settings of the stream worker. Env: ``PERSONA_STREAM_<FIELD>`` (or a line in ``.env``).

Shared connection settings (Kafka, PostgreSQL, MLflow, topic names) come from
``personas.settings.Settings``; this class holds only what a labelling worker tunes.
Built in the CLI, never at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from personas.settings import Settings

__all__ = ["DEFAULT_TOPIC", "StreamSettings"]

DEFAULT_TOPIC = "survey-responses"


class StreamSettings(BaseSettings):
    """How one stream worker batches, where it keeps state and how it serves metrics."""

    model_config = SettingsConfigDict(
        env_prefix="PERSONA_STREAM_", env_file=".env", extra="ignore", frozen=True
    )

    app_id: str = Field(
        "",
        description=(
            "Faust app id = Kafka consumer group of the labellers. Empty: 'persona-stream' for the "
            "default input topic, else 'persona-stream-<input topic>' (so tests never share a group)."
        ),
    )
    engine: Literal["batch", "agent"] = Field(
        "batch",
        description=(
            "How the worker consumes survey-responses. 'batch': a confluent-kafka consume loop "
            "inside the Faust worker, batch by batch (about 3x faster, the default). 'agent': a "
            "Faust agent over Stream.noack_take. Same outputs and guarantees."
        ),
    )
    max_batch: int = Field(
        10_000,
        ge=1,
        le=100_000,
        description=(
            "Most events labelled and written in one batch. Only a backlog fills it (a light "
            "stream gets what arrived within batch_timeout); there, fewer PostgreSQL "
            "transactions and producer flushes per event: 10,000 replayed 70-81k events/s "
            "against 61k at 2,000 on 2 cores (docs/benchmarks/stream_app.md)."
        ),
    )
    batch_timeout: float = Field(
        0.005,
        gt=0,
        le=60,
        description="Seconds to wait for a batch to fill before labelling what has arrived.",
    )
    max_inflight: int = Field(
        2,
        ge=1,
        le=16,
        description=(
            "Batches' worth of events that may wait while one batch is written; beyond that the "
            "worker stops taking input (back-pressure)."
        ),
    )
    web_host: str = Field("127.0.0.1", description="Interface of the worker's web endpoint.")
    web_port: int = Field(
        6066, ge=1, le=65535, description="Port of /health and /metrics (distinct per worker)."
    )
    state_dir: Path | None = Field(
        None,
        description=(
            "Faust data dir and the on-disk model cache. Empty: <PERSONA_CACHE_DIR>/stream_app "
            "(never the working directory)."
        ),
    )
    registry_poll_seconds: float = Field(
        30.0,
        gt=0,
        description="How often to re-check the registry champion (safety net beside model-updates).",
    )
    commit_interval: float = Field(
        1.0, gt=0, description="Seconds between Kafka offset commits of acknowledged events."
    )
    session_timeout: float = Field(
        10.0,
        ge=6,
        le=300,
        description=(
            "Kafka group session timeout: how long a dead worker keeps its partitions before the "
            "group hands them to the others."
        ),
    )
    producer_linger_ms: int = Field(
        2, ge=0, description="linger.ms of the output producer (labels, dead letters)."
    )
    retry_max_backoff: float = Field(
        30.0, gt=0, description="Longest pause between retries while PostgreSQL or Kafka is down."
    )
    future_margin_s: float = Field(
        3600.0,
        gt=0,
        description="Events dated more than this after the worker's clock go to the DLQ "
        "(future_timestamp): a wrong device clock must not move the monitor's event time.",
    )
    shutdown_grace: float = Field(
        20.0, ge=0, description="Seconds a stopping worker lets the in-flight batch finish."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of the worker."
    )

    def resolved_app_id(self, settings: Settings) -> str:
        if self.app_id:
            return self.app_id
        topic = settings.topics.responses
        return "persona-stream" if topic == DEFAULT_TOPIC else f"persona-stream-{topic}"

    def resolved_state_dir(self, settings: Settings) -> Path:
        return (self.state_dir or settings.cache_dir / "stream_app").resolve()
