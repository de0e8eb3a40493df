"""Shared settings: where the services are, what the topics are called, where the stack lives.

Every field is an environment variable ``PERSONA_<FIELD>`` (or a line in ``.env``). Service-specific
settings live beside each service (``<service>/settings.py``) with their own prefix. Nothing here is
read at import time: build ``Settings()`` in ``main()`` / the CLI and pass it down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "TopicNames"]


class TopicNames(BaseSettings):
    """Kafka topic names (DESIGN.md contracts). Env: ``PERSONA_TOPIC_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="PERSONA_TOPIC_", env_file=".env", extra="ignore", frozen=True
    )

    responses: str = Field("survey-responses", description="Survey events in (key respondent_id).")
    labels: str = Field("persona-labels", description="One PersonaLabel per labelled event.")
    dlq: str = Field("survey-responses.dlq", description="Invalid input with the reason.")
    alerts: str = Field(
        "drift-alerts", description="DriftReport per closed window, trainer alerts."
    )
    retrain: str = Field("retrain-commands", description="RetrainCommand from the monitor.")
    model_updates: str = Field("model-updates", description="ModelUpdated when champion moves.")

    @classmethod
    def private(cls, suffix: str) -> TopicNames:
        """The default names with ``-suffix`` (before a ``.dlq`` ending), whatever the environment
        says: topics that belong to one test or one benchmark run and to nothing else."""
        names: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            stem, dot, ending = str(field.default).partition(".")
            names[name] = f"{stem}-{suffix}{dot}{ending}"
        return cls.model_validate(names)


class Settings(BaseSettings):
    """Connection and location settings shared by every service. Env: ``PERSONA_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="PERSONA_", env_file=".env", extra="ignore", frozen=True
    )

    # Kafka
    kafka_host: str = Field("127.0.0.1", description="Host the Kafka broker listens on.")
    kafka_port: int = Field(9092, description="Kafka broker (client) port.")
    kafka_controller_port: int = Field(9093, description="KRaft controller port (local stack).")
    kafka_version: str = Field("4.4.0", description="Apache Kafka release the local stack runs.")
    kafka_partitions: int = Field(
        4, ge=1, description="Partitions of survey-responses and persona-labels."
    )

    # PostgreSQL
    pg_host: str = Field("127.0.0.1", description="PostgreSQL host.")
    pg_port: int = Field(5433, description="PostgreSQL port (5433 avoids a system server).")
    pg_user: str = Field("persona", description="PostgreSQL role the services use.")
    pg_password: SecretStr = Field(SecretStr("persona"), description="Password of pg_user.")
    pg_database: str = Field("personas", description="Application database.")
    pg_mlflow_database: str = Field("mlflow", description="Database of the MLflow backend store.")

    # MLflow
    mlflow_host: str = Field("127.0.0.1", description="Host the MLflow server listens on.")
    mlflow_port: int = Field(5050, description="MLflow tracking server + registry port.")
    mlflow_tracking_uri: str = Field(
        "", description="Tracking URI; empty = http://<mlflow_host>:<mlflow_port>."
    )
    model_name: str = Field("persona-model", description="Registered model name.")
    champion_alias: str = Field("champion", description="Registry alias of the serving model.")

    pg_schema: str = Field(
        "public", pattern=r"^[a-z_][a-z0-9_]*$", description="Schema holding the app's tables."
    )
    topics: TopicNames = Field(default_factory=lambda: TopicNames(), description="Topic names.")

    # Local stack files
    stack_dir: Path = Field(Path(".stack"), description="Data, logs and PID files of the stack.")
    cache_dir: Path = Field(Path(".cache"), description="Downloaded Kafka jars (not committed).")

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.kafka_host}:{self.kafka_port}"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"http://{self.mlflow_host}:{self.mlflow_port}"

    def pg_dsn(self, database: str | None = None, *, with_password: bool = True) -> str:
        """libpq URI; ``with_password=False`` for anything printed or logged."""
        auth = quote(self.pg_user)
        if with_password:
            auth += ":" + quote(self.pg_password.get_secret_value())
        return f"postgresql://{auth}@{self.pg_host}:{self.pg_port}/{database or self.pg_database}"

    def mlflow_backend_uri(self) -> str:
        """SQLAlchemy URI of MLflow's backend store (psycopg 3 driver; psycopg2 is not installed)."""
        return self.pg_dsn(self.pg_mlflow_database).replace(
            "postgresql://", "postgresql+psycopg://"
        )
