"""Producer settings. Env: ``PERSONA_PRODUCER_<FIELD>`` (or ``.env``); connection settings come
from ``personas.settings.Settings``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ProducerSettings"]


class ProducerSettings(BaseSettings):
    """How the producer serialises, validates, batches and reports."""

    model_config = SettingsConfigDict(
        env_prefix="PERSONA_PRODUCER_", env_file=".env", extra="ignore", frozen=True
    )

    chunk_rows: int = Field(
        20_000,
        ge=1,
        description="Rows serialised to JSON at once before being handed to the Kafka client.",
    )
    json_threads: int = Field(
        2,
        ge=1,
        description=(
            "Threads building the JSON of the next chunks while the current one is sent (most "
            "of the work runs in orjson and Arrow kernels, outside the GIL)."
        ),
    )
    validate_mode: Literal["fast", "full"] = Field(
        "fast",
        description=(
            "fast: vectorised checks of every row plus the pydantic schema on a sample of the "
            "payloads; full: the pydantic schema on every payload too (~50k rows/s)."
        ),
    )
    schema_sample: int = Field(
        500, ge=0, description="Payloads re-checked with the pydantic schema in fast mode."
    )
    linger_ms: int = Field(
        20, ge=0, description="librdkafka linger.ms: how long a batch waits to fill up."
    )
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "lz4", description="librdkafka compression.type of produced batches."
    )
    flush_timeout_s: float = Field(
        60.0, gt=0, description="How long to wait at the end for outstanding deliveries."
    )
    future_margin_s: float = Field(
        60.0,
        ge=0,
        description=(
            "Safety margin under the broker's message.timestamp.after.max.ms when deciding that "
            "a timestamp is too far in the future (clock skew between us and the broker)."
        ),
    )
    max_errors_shown: int = Field(
        20, ge=0, description="Row errors printed by the CLI (all are counted in the summary)."
    )
    progress: Literal["auto", "always", "never"] = Field(
        "auto", description="Progress bar: auto shows it only when stderr is a terminal."
    )
