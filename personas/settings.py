"""Shared settings: where the services are, what the topics are called, where the stack lives.

Every field is an environment variable ``PERSONA_<FIELD>`` (or a line in ``.env``). Service-specific
settings live beside each service (``<service>/settings.py``) with their own prefix. Nothing here is
read at import time: build ``Settings()`` in ``main()`` / the CLI and pass it down.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "RENAMED",
    "KafkaProtocol",
    "PgSslMode",
    "SaslMechanism",
    "Settings",
    "TopicNames",
    "read_secret",
    "settings_env",
]

KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
PgSslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


#: Settings that were renamed: the settings classes ignore unknown names (one .env serves every
#: service), so an old name would be dropped silently. The CLI refuses it instead, naming the new
#: one (``check_renamed``).
RENAMED = {
    # one acceptance rule for the stream and REST, so one setting (2026-12)
    "PERSONA_STREAM_ALLOW_NEW_PERSONAS": "PERSONA_ALLOW_NEW_PERSONAS",
    "PERSONA_SERVE_ALLOW_NEW_PERSONAS": "PERSONA_ALLOW_NEW_PERSONAS",
}


def check_renamed(environ: Mapping[str, str], env_file: Path = Path(".env")) -> None:
    """Raise ConfigError if the environment or ``env_file`` still sets a renamed setting."""
    from dotenv import dotenv_values

    values: dict[str, str | None] = dict(environ)
    if env_file.is_file():
        values = {**dotenv_values(env_file), **values}
    # An old name left at its default changes nothing (a copied .env.example has them all).
    old = sorted(
        name
        for name in RENAMED.keys() & values.keys()
        if (values[name] or "").strip().lower() not in ("", "false", "0", "no")
    )
    if old:
        from personas.errors import ConfigError

        where = ", ".join(f"{name} is now {RENAMED[name]}" for name in old)
        raise ConfigError(f"renamed setting: {where} (rename it in the environment or .env)")


def read_secret(path: Path, setting: str) -> str:
    """A secret kept in a file (a mounted Kubernetes/Docker secret): its text without the final
    newline. A missing or unreadable file is a ConfigError naming the setting, never a traceback."""
    from personas.errors import ConfigError

    try:
        return path.read_text().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{setting}={path}: cannot read the secret ({exc.strerror})") from None


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
        env_prefix="PERSONA_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        env_ignore_empty=True,  # `.env.example` copied as is: an empty value is the default
    )

    # Kafka: where, and how clients prove who they are (docs/deploying.md)
    kafka_host: str = Field("127.0.0.1", description="Host the Kafka broker listens on.")
    kafka_port: int = Field(9092, description="Kafka broker (client) port.")
    kafka_bootstrap_servers: str = Field(
        "",
        description="Comma-separated bootstrap list (a:9093,b:9093); empty = kafka_host:kafka_port.",
    )
    kafka_security_protocol: KafkaProtocol = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        "SCRAM-SHA-512", description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* only)."
    )
    kafka_username: str = Field("", description="SASL username (SASL_* only).")
    kafka_password: SecretStr = Field(SecretStr(""), description="SASL password.")
    kafka_password_file: Path | None = Field(
        None, description="File holding the SASL password (a mounted secret); wins over the value."
    )
    kafka_ssl_ca_file: Path | None = Field(
        None,
        description="PEM CA bundle that signed the brokers (SSL/SASL_SSL); empty = system CAs.",
    )
    kafka_ssl_cert_file: Path | None = Field(
        None, description="Client certificate (PEM) for mutual TLS; needs kafka_ssl_key_file."
    )
    kafka_ssl_key_file: Path | None = Field(None, description="Client private key (PEM), mTLS.")
    kafka_ssl_key_password: SecretStr = Field(
        SecretStr(""), description="Password of an encrypted client key."
    )
    kafka_ssl_check_hostname: bool = Field(
        True, description="Verify that the broker certificate names the host we connect to."
    )
    kafka_client_properties: dict[str, str] = Field(
        default_factory=dict,
        description='Any other librdkafka property, as JSON: {"socket.keepalive.enable": "true"}.',
    )
    kafka_replication_factor: int = Field(
        1, ge=1, description="Replication factor of the topics `persona topics create` makes."
    )
    kafka_min_insync_replicas: int | None = Field(
        None, ge=1, description="min.insync.replicas of those topics; empty = broker default."
    )
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
    pg_password_file: Path | None = Field(
        None, description="File holding pg_user's password (a mounted secret); wins over the value."
    )
    pg_url: SecretStr = Field(
        SecretStr(""),
        description="Full libpq DSN (postgresql://user@host:port/db?sslmode=...); wins over the parts.",
    )
    pg_sslmode: PgSslMode = Field(
        "prefer",
        description="libpq sslmode: disable … verify-full (managed services: verify-full).",
    )
    pg_sslrootcert: Path | None = Field(None, description="CA file that signed the server (PEM).")
    pg_sslcert: Path | None = Field(None, description="Client certificate for TLS client auth.")
    pg_sslkey: Path | None = Field(None, description="Client key for TLS client auth.")
    pg_database: str = Field("personas", description="Application database.")
    pg_mlflow_database: str = Field("mlflow", description="Database of the MLflow backend store.")

    # MLflow
    mlflow_host: str = Field("127.0.0.1", description="Host the MLflow server listens on.")
    mlflow_port: int = Field(5050, description="MLflow tracking server + registry port.")
    mlflow_tracking_uri: str = Field(
        "", description="Tracking URI; empty = http://<mlflow_host>:<mlflow_port>."
    )
    model_name: str = Field("persona-model", description="Registered model name.")

    # Prometheus (the local stack's, and where `persona status` asks)
    prometheus_host: str = Field("127.0.0.1", description="Host the stack's Prometheus listens on.")
    prometheus_port: int = Field(9090, description="Port of the stack's Prometheus.")
    allow_new_personas: bool = Field(
        False,
        description=(
            "Let the stream and the REST service take a champion with persona ids that neither the "
            "vendor catalogue, the current model nor a person (`persona train accept`) approved."
        ),
    )
    champion_alias: str = Field("champion", description="Registry alias of the serving model.")

    pg_schema: str = Field(
        "public", pattern=r"^[a-z_][a-z0-9_]*$", description="Schema holding the app's tables."
    )
    topics: TopicNames = Field(default_factory=lambda: TopicNames(), description="Topic names.")

    # Local stack files
    stack_dir: Path = Field(Path(".stack"), description="Data, logs and PID files of the stack.")
    cache_dir: Path = Field(Path(".cache"), description="Downloaded Kafka jars (not committed).")

    @model_validator(mode="after")
    def _consistent_security(self) -> Settings:
        """Settings that cannot work together fail at start-up, naming the variables, instead of
        as a handshake timeout minutes later."""
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL_") and not self.kafka_username:
            raise ValueError(
                f"PERSONA_KAFKA_SECURITY_PROTOCOL={protocol} needs PERSONA_KAFKA_USERNAME"
            )
        tls_files = {
            "PERSONA_KAFKA_SSL_CA_FILE": self.kafka_ssl_ca_file,
            "PERSONA_KAFKA_SSL_CERT_FILE": self.kafka_ssl_cert_file,
            "PERSONA_KAFKA_SSL_KEY_FILE": self.kafka_ssl_key_file,
        }
        if protocol not in ("SSL", "SASL_SSL"):
            for name, value in tls_files.items():
                if value is not None:
                    raise ValueError(
                        f"{name} is set but PERSONA_KAFKA_SECURITY_PROTOCOL={protocol} does not "
                        "use TLS (SSL or SASL_SSL)"
                    )
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError(
                "mutual TLS needs both PERSONA_KAFKA_SSL_CERT_FILE and PERSONA_KAFKA_SSL_KEY_FILE"
            )
        return self

    @property
    def kafka_servers(self) -> list[str]:
        """The bootstrap brokers as ``host:port`` strings."""
        if self.kafka_bootstrap_servers.strip():
            return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]
        return [f"{self.kafka_host}:{self.kafka_port}"]

    @property
    def kafka_bootstrap(self) -> str:
        """The bootstrap list as librdkafka wants it, and as messages name the cluster."""
        return ",".join(self.kafka_servers)

    def kafka_secret(self) -> str:
        """The SASL password: from its file when one is configured, else the value."""
        if self.kafka_password_file is not None:
            return read_secret(self.kafka_password_file, "PERSONA_KAFKA_PASSWORD_FILE")
        return self.kafka_password.get_secret_value()

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"http://{self.mlflow_host}:{self.mlflow_port}"

    def pg_secret(self) -> str:
        """pg_user's password: from its file when one is configured, else the value."""
        if self.pg_password_file is not None:
            return read_secret(self.pg_password_file, "PERSONA_PG_PASSWORD_FILE")
        return self.pg_password.get_secret_value()

    def pg_params(
        self, database: str | None = None, *, with_password: bool = True
    ) -> dict[str, str]:
        """libpq keyword parameters of a connection: the DSN when one is configured, completed
        by the parts it leaves out; ``database`` replaces its dbname. ``with_password=False``
        (for display) never reads the password or its file."""
        params: dict[str, str] = {}
        url = self.pg_url.get_secret_value()
        if url:
            from psycopg.conninfo import conninfo_to_dict

            params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
        else:
            params = {
                "host": self.pg_host,
                "port": str(self.pg_port),
                "user": self.pg_user,
                "dbname": self.pg_database,
            }
        if database is not None:
            params["dbname"] = database
        params.setdefault("sslmode", self.pg_sslmode)
        for key, path in (
            ("sslrootcert", self.pg_sslrootcert),
            ("sslcert", self.pg_sslcert),
            ("sslkey", self.pg_sslkey),
        ):
            if path is not None:
                params.setdefault(key, str(path))
        if not with_password:
            params.pop("password", None)
            return params
        explicit = self.pg_password_file is not None or "pg_password" in self.model_fields_set
        if "password" not in params and (explicit or not url):
            params["password"] = self.pg_secret()
        return params

    def pg_dsn(self, database: str | None = None, *, with_password: bool = True) -> str:
        """libpq URI; ``with_password=False`` for anything printed or logged."""
        return _pg_uri("postgresql", self.pg_params(database, with_password=with_password))

    def mlflow_backend_uri(self) -> str:
        """SQLAlchemy URI of MLflow's backend store (psycopg 3 driver; psycopg2 is not installed).
        It holds the password: give it to the server by environment, never on its command line."""
        return _pg_uri("postgresql+psycopg", self.pg_params(self.pg_mlflow_database))


def settings_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment that makes a child ``persona`` process see exactly these shared settings
    (``base``: the environment to start from, default this process's). Secrets travel in the
    environment, never on a command line; an unset optional value is an empty variable, which
    the child reads as its default."""
    import json
    import os

    env = dict(os.environ if base is None else base)
    for name in Settings.model_fields:
        if name == "topics":
            continue
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None:
            text = ""
        elif isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, dict):
            text = json.dumps(value)
        else:
            text = str(value)
        env[f"PERSONA_{name.upper()}"] = text
    for name in type(settings.topics).model_fields:
        env[f"PERSONA_TOPIC_{name.upper()}"] = getattr(settings.topics, name)
    return env


def _pg_uri(scheme: str, params: dict[str, str]) -> str:
    rest = dict(params)
    auth = quote(rest.pop("user", ""), safe="")
    password = rest.pop("password", None)
    if password:
        auth += ":" + quote(password, safe="")
    host = rest.pop("host", "")
    port = rest.pop("port", "")
    database = rest.pop("dbname", "")
    netloc = f"{auth}@{host}" if auth else host
    if port:
        netloc += f":{port}"
    query = urlencode(rest, safe="/")
    return f"{scheme}://{netloc}/{quote(database, safe='')}" + (f"?{query}" if query else "")
