"""Settings of the REST prediction service. Env: ``PERSONA_SERVE_<FIELD>`` (or ``.env``).

Connection settings (MLflow, Kafka, model name, alias) come from ``personas.settings.Settings``;
only what is specific to serving lives here. Built inside the CLI, never at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServeSettings"]


class ServeSettings(BaseSettings):
    """How `persona serve` listens, follows the champion and bounds requests."""

    model_config = SettingsConfigDict(
        env_prefix="PERSONA_SERVE_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = Field("127.0.0.1", description="Address Gunicorn binds (0.0.0.0 in containers).")
    port: int = Field(9999, ge=1, le=65535, description="HTTP port (the seed's service used 9999).")
    workers: int = Field(2, ge=1, le=64, description="Gunicorn worker processes.")
    threads: int = Field(
        2, ge=1, le=64, description="Threads per worker (>1 selects Gunicorn's gthread worker)."
    )
    timeout_s: int = Field(
        60, ge=5, description="Gunicorn worker timeout; bounds a worker's boot (first model load)."
    )
    access_log: bool = Field(False, description="Write one access-log line per request to stdout.")

    poll_interval_s: float = Field(
        5.0,
        gt=0,
        description="How often each worker asks the registry where the champion alias points.",
    )
    follow_updates_topic: bool = Field(
        True,
        description=(
            "Also listen to the model-updates topic so a moved alias is picked up at once "
            "(polling stays on as the guarantee when Kafka is unreachable)."
        ),
    )
    registry_timeout_s: int = Field(
        5, ge=1, description="HTTP timeout of one MLflow request (MLflow's own default is 120 s)."
    )
    registry_retries: int = Field(
        1, ge=0, le=10, description="MLflow HTTP retries per request (MLflow's default is 7)."
    )
    cache_dir: Path = Field(
        Path(".cache/serving"),
        description="Last champion loaded, kept on disk so a restart without MLflow serves it.",
    )

    max_batch: int = Field(10_000, ge=1, description="Most records one POST /predict may carry.")
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above it)."
    )

    @property
    def bind(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"
