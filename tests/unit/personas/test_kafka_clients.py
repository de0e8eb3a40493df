"""Every Kafka client gets its connection settings from personas.kafka, and those settings carry
the bootstrap list, security protocol, SASL and TLS of a secured cluster to each kind of client."""

from __future__ import annotations

import ast
import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from personas.errors import ConfigError
from personas.kafka import (
    admin_config,
    aiokafka_options,
    client_config,
    consumer_config,
    explain_kafka_error,
    faust_broker,
    producer_config,
    topic_specs,
)
from personas.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("personas", "producer", "stream_app", "monitor", "trainer", "serving", "infra", "bench")

CONFLUENT_CLIENTS = {"Consumer", "Producer", "AdminClient"}
BUILDERS = {"producer_config", "consumer_config", "admin_config"}
#: Functions that receive a config built by a builder and only pass it on (checked by hand):
#: (file, function, parameter).
PASS_THROUGH = {("stream_app/engines/batch.py", "_default_consumer", "config")}


def _ca(tmp_path: Path) -> Path:
    """A real self-signed CA (ssl contexts parse it)."""
    import subprocess

    ca = tmp_path / "ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(tmp_path / "ca.key"), "-out", str(ca), "-days", "1",
         "-subj", "/CN=test-ca"],
        check=True, capture_output=True,
    )  # fmt: skip
    return ca


def _secured(tmp_path: Path, **extra: object) -> Settings:
    secret = tmp_path / "kafka.password"
    secret.write_text("from-the-file\n")
    values: dict[str, object] = {
        "kafka_bootstrap_servers": "a.example:9093, b.example:9093,c.example:9093",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_username": "stream",
        "kafka_password": "ignored-when-a-file-is-set",
        "kafka_password_file": secret,
        "kafka_ssl_ca_file": _ca(tmp_path),
        "kafka_client_properties": {"socket.keepalive.enable": "true"},
    }
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_local_default_is_one_plaintext_broker() -> None:
    config = client_config(Settings(_env_file=None))
    assert config == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"}


def test_every_confluent_client_kind_carries_the_security_settings(tmp_path: Path) -> None:
    settings = _secured(tmp_path)
    for config in (
        producer_config(settings, **{"linger.ms": 5}),
        consumer_config(settings, "g"),
        admin_config(settings),
    ):
        assert config["bootstrap.servers"] == "a.example:9093,b.example:9093,c.example:9093"
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.mechanism"] == "SCRAM-SHA-512"
        assert config["sasl.username"] == "stream"
        assert config["sasl.password"] == "from-the-file"
        assert config["ssl.ca.location"] == str(tmp_path / "ca.pem")
        assert config["ssl.endpoint.identification.algorithm"] == "https"
        assert config["socket.keepalive.enable"] == "true"


def test_environment_reaches_the_clients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret")
    monkeypatch.setenv("PERSONA_KAFKA_BOOTSTRAP_SERVERS", "x:1,y:2")
    monkeypatch.setenv("PERSONA_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("PERSONA_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("PERSONA_KAFKA_USERNAME", "u")
    monkeypatch.setenv("PERSONA_KAFKA_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("PERSONA_KAFKA_CLIENT_PROPERTIES", '{"client.rack": "r1"}')
    config = consumer_config(Settings(_env_file=None), "g")
    assert config["bootstrap.servers"] == "x:1,y:2"
    assert (config["sasl.mechanism"], config["sasl.password"]) == ("PLAIN", "s3cret")
    assert config["client.rack"] == "r1"
    assert "ssl.ca.location" not in config


def test_mutual_tls_and_hostname_check(tmp_path: Path) -> None:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_text("cert")
    key.write_text("key")
    settings = Settings(
        _env_file=None,
        kafka_security_protocol="SSL",
        kafka_ssl_cert_file=cert,
        kafka_ssl_key_file=key,
        kafka_ssl_key_password="kp",  # type: ignore[arg-type]
        kafka_ssl_check_hostname=False,
    )
    config = client_config(settings)
    assert config["ssl.ca.location"] == "probe"  # no CA file: the system's bundle
    assert config["ssl.certificate.location"] == str(cert)
    assert config["ssl.key.location"] == str(key)
    assert config["ssl.key.password"] == "kp"
    assert config["ssl.endpoint.identification.algorithm"] == "none"
    assert "sasl.username" not in config


def test_aiokafka_and_faust_get_the_same_connection(tmp_path: Path) -> None:
    import faust

    settings = _secured(tmp_path)
    options = aiokafka_options(settings)
    assert options["bootstrap_servers"] == ["a.example:9093", "b.example:9093", "c.example:9093"]
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "stream",
        "from-the-file",
    )
    assert options["ssl_context"].check_hostname
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED

    broker = faust_broker(settings)
    assert broker["broker"] == [
        "kafka://a.example:9093",
        "kafka://b.example:9093",
        "kafka://c.example:9093",
    ]
    credentials = broker["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("stream", "from-the-file")
    assert credentials.ssl_context is not None
    assert faust_broker(Settings(_env_file=None))["broker_credentials"] is None


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "PERSONA_KAFKA_USERNAME"),
        (
            {"kafka_security_protocol": "PLAINTEXT", "kafka_ssl_ca_file": "/ca.pem"},
            "PERSONA_KAFKA_SSL_CA_FILE",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "/c.pem"},
            "PERSONA_KAFKA_SSL_KEY_FILE",
        ),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
    ],
)
def test_settings_that_cannot_work_are_refused_naming_them(
    values: dict[str, str], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_a_missing_secret_or_ca_file_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    settings = _secured(tmp_path, kafka_password_file=tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"PERSONA_KAFKA_PASSWORD_FILE=.*nope"):
        producer_config(settings)
    settings = _secured(tmp_path, kafka_ssl_ca_file=tmp_path / "missing-ca.pem")
    with pytest.raises(ConfigError, match=r"PERSONA_KAFKA_SSL_CA_FILE=.*missing-ca\.pem: no such"):
        consumer_config(settings, "g")


def test_secrets_stay_out_of_reprs(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, kafka_password="hunter2", pg_password="pg-secret")  # type: ignore[arg-type]
    assert "hunter2" not in repr(settings)
    assert "pg-secret" not in settings.pg_dsn(with_password=False)


def test_topic_specs_carry_replication_and_min_isr() -> None:
    settings = Settings(_env_file=None, kafka_replication_factor=3, kafka_min_insync_replicas=2)
    for spec in topic_specs(settings):
        assert spec.replication_factor == 3
        assert spec.config["min.insync.replicas"] == "2"
    local = topic_specs(Settings(_env_file=None))[0]
    assert "min.insync.replicas" not in local.config
    assert local.replication_factor == 1


@pytest.mark.parametrize(
    ("error", "what", "fix"),
    [
        (
            "ssl://b:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed",
            "not trusted",
            "PERSONA_KAFKA_SSL_CA_FILE",
        ),
        (
            "sasl_ssl://b:9093/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512",
            "wrong username or password",
            "PERSONA_KAFKA_PASSWORD",
        ),
        (
            "b:9093/bootstrap: Connect to ipv4#127.0.0.1:9093 failed: Connection refused",
            "nothing listens",
            "PERSONA_KAFKA_BOOTSTRAP_SERVERS",
        ),
        (
            "b:9093/bootstrap: Disconnected while requesting ApiVersion: might be caused by incorrect security.protocol configuration",
            "closed the connection",
            "PERSONA_KAFKA_SECURITY_PROTOCOL",
        ),
    ],
)
def test_connection_errors_are_explained(error: str, what: str, fix: str) -> None:
    said, hint = explain_kafka_error([error])
    assert what in said
    assert fix in hint


def test_pg_settings_from_parts_dsn_and_file(tmp_path: Path) -> None:
    parts = Settings(_env_file=None, pg_sslmode="verify-full", pg_sslrootcert=tmp_path / "ca.pem")
    params = parts.pg_params()
    assert params["sslmode"] == "verify-full"
    assert params["sslrootcert"] == str(tmp_path / "ca.pem")
    assert params["password"] == "persona"
    secret = tmp_path / "pg.password"
    secret.write_text("from-file\n")
    dsn = Settings(
        _env_file=None,
        pg_url="postgresql://app@db.example:6543/prod?sslmode=require",  # type: ignore[arg-type]
        pg_password_file=secret,
    )
    params = dsn.pg_params("other")
    assert (params["host"], params["port"], params["user"]) == ("db.example", "6543", "app")
    assert (params["dbname"], params["sslmode"], params["password"]) == (
        "other",
        "require",
        "from-file",
    )
    shown = dsn.pg_dsn(with_password=False)
    assert shown == "postgresql://app@db.example:6543/prod?sslmode=require"
    backend = dsn.mlflow_backend_uri()
    assert backend.startswith("postgresql+psycopg://app:from-file@db.example:6543/mlflow?")
    # A DSN without a password and no password setting: libpq's own sources (.pgpass, PGPASSWORD).
    bare = Settings(_env_file=None, pg_url="postgresql://app@db.example/prod")  # type: ignore[arg-type]
    assert "password" not in bare.pg_params()


def _called_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _assigned_from_builder(function: ast.AST, name: str) -> bool:
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            value = node.value
            if isinstance(value, ast.Call) and _called_name(value) in BUILDERS:
                return True
    return False


def _python_files() -> list[Path]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    return files + sorted((ROOT / "tests" / "integration").rglob("*.py"))


def test_no_kafka_client_is_built_any_other_way() -> None:
    """Every confluent-kafka client takes its config from a builder; every aiokafka client and
    Faust app takes ``**aiokafka_options(...)`` / ``**faust_broker(...)``; nobody else spells a
    bootstrap address. A client built otherwise would miss the cluster's TLS and SASL."""
    problems: list[str] = []
    checked = 0
    for path in _python_files():
        rel = str(path.relative_to(ROOT))
        if rel == "personas/kafka.py":
            continue
        source = path.read_text()
        if "bootstrap.servers" in source or "bootstrap_servers=" in source:
            problems.append(f"{rel}: spells a bootstrap address itself")
        tree = ast.parse(source)
        enclosing: dict[ast.AST, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        for function in ast.walk(tree):  # outer first: inner functions overwrite
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(function):
                    enclosing[inner] = function
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _called_name(node)
            spread = {
                _called_name(k.value)
                for k in node.keywords
                if k.arg is None and isinstance(k.value, ast.Call)
            }
            where = f"{rel}:{node.lineno}"
            if name in CONFLUENT_CLIENTS:
                checked += 1
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Call) and _called_name(arg) in BUILDERS:
                    continue
                function = enclosing.get(node)
                if isinstance(arg, ast.Name) and function is not None:
                    if _assigned_from_builder(function, arg.id):
                        continue
                    if (rel, function.name, arg.id) in PASS_THROUGH:
                        continue
                problems.append(f"{where}: {name}(...) not built from {sorted(BUILDERS)}")
            elif name.startswith("AIOKafka"):
                checked += 1
                if "aiokafka_options" not in spread:
                    problems.append(f"{where}: {name} without **aiokafka_options(settings)")
            elif (
                name == "App"
                and isinstance(node.func, ast.Attribute)
                and getattr(node.func.value, "id", "") == "faust"
            ):
                checked += 1
                if "faust_broker" not in spread:
                    problems.append(f"{where}: faust.App without **faust_broker(settings)")
    assert checked > 30, "the scan found too few clients: has the layout changed?"
    assert not problems, "\n".join(problems)


def test_a_displayed_dsn_never_reads_the_password_file(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet-written"
    settings = Settings(_env_file=None, pg_password_file=missing)
    assert settings.pg_dsn(with_password=False).startswith("postgresql://persona@")
    with pytest.raises(ConfigError, match="PERSONA_PG_PASSWORD_FILE"):
        settings.pg_dsn()


def test_consumers_refetch_soon_after_a_full_queue_unless_the_user_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """librdkafka's 1 s default starves a consumer above 100k messages/s (docs/facts.md)."""
    assert consumer_config(Settings(_env_file=None), "g")["fetch.queue.backoff.ms"] == 100
    monkeypatch.setenv("PERSONA_KAFKA_CLIENT_PROPERTIES", '{"fetch.queue.backoff.ms": "500"}')
    assert consumer_config(Settings(_env_file=None), "g")["fetch.queue.backoff.ms"] == "500"
