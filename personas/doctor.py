"""`persona doctor`: check every configured service the way the services will use it.

Each check is one line: Kafka reachable, TLS verified, authenticated, authorised for what the
selected services do (personas.access), topics present with their partitions and replication;
PostgreSQL reachable, TLS, authenticated, schema migrated; MLflow reachable, authenticated,
champion registered. A failure names the service and the fix; every check is bounded in time, so
a wrong port or a firewall that drops packets is a line within seconds, never a hang.

The services run the Kafka part for their own grants at start-up (:func:`require_kafka`) so they
fail with the same lines.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from personas.access import SERVICES, Grant, service_grants
from personas.errors import ConfigError, PersonaError, ServiceUnavailable
from personas.settings import Settings

__all__ = ["Check", "diagnose", "require_kafka"]

Status = Literal["ok", "fail", "note"]


@dataclass(frozen=True)
class Check:
    service: str  # Kafka, PostgreSQL, MLflow
    what: str  # reachable, TLS verified, authenticated, authorised, topics, schema, champion
    status: Status
    detail: str

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def line(self) -> str:
        mark = {"ok": "ok  ", "fail": "FAIL", "note": "--  "}[self.status]
        return f"{mark} {self.service:<10} {self.what:<14} {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tcp(host_port: str, timeout: float) -> str | None:
    """None if something accepts a TCP connection there, else why not."""
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except ValueError:
        return f"{host_port!r} is not host:port"
    except OSError as exc:
        return exc.strerror or str(exc)


# --- Kafka -----------------------------------------------------------------------------------


def _kafka_checks(
    settings: Settings, services: Iterable[str], timeout: float
) -> tuple[list[Check], Any]:
    """Reachability, TLS and authentication; returns the checks and a working admin client."""
    from personas.kafka import connected_admin

    checks: list[Check] = []
    unreachable = [
        f"{server} ({why})"
        for server in settings.kafka_servers
        if (why := _tcp(server, timeout)) is not None
    ]
    if len(unreachable) == len(settings.kafka_servers):
        checks.append(
            Check(
                "Kafka",
                "reachable",
                "fail",
                f"no bootstrap server answers: {', '.join(unreachable)} — check "
                "PERSONA_KAFKA_BOOTSTRAP_SERVERS; local stack: `make up`",
            )
        )
        return checks, None
    detail = f"{settings.kafka_bootstrap}"
    if unreachable:
        detail += f" (not answering: {', '.join(unreachable)})"
    checks.append(Check("Kafka", "reachable", "ok", detail))
    protocol = settings.kafka_security_protocol
    tls = protocol in ("SSL", "SASL_SSL")
    sasl = protocol.startswith("SASL_")
    try:
        admin, _ = connected_admin(settings, timeout=timeout)
    except (ServiceUnavailable, ConfigError) as exc:
        reason = getattr(exc, "reason", str(exc))
        hint = getattr(exc, "hint", "")
        what = "TLS verified" if "TLS" in reason else "authenticated"
        checks.append(Check("Kafka", what, "fail", f"{reason} — {hint}" if hint else reason))
        return checks, None
    if tls:
        ca = settings.kafka_ssl_ca_file or "the system CAs"
        host = " and host name" if settings.kafka_ssl_check_hostname else " (host name NOT checked)"
        checks.append(Check("Kafka", "TLS verified", "ok", f"certificate{host} against {ca}"))
    else:
        checks.append(Check("Kafka", "TLS verified", "note", f"not used ({protocol})"))
    if sasl:
        checks.append(
            Check(
                "Kafka",
                "authenticated",
                "ok",
                f"as {settings.kafka_username} ({settings.kafka_sasl_mechanism})",
            )
        )
    else:
        checks.append(Check("Kafka", "authenticated", "note", f"no authentication ({protocol})"))
    return checks, admin


def _topic_operations(admin: Any, topics: list[str], timeout: float) -> dict[str, set[str] | str]:
    """Operations the user may perform on each topic, or why they cannot be read."""
    from confluent_kafka import KafkaException, TopicCollection

    out: dict[str, set[str] | str] = {}
    futures = admin.describe_topics(
        TopicCollection(topics), include_authorized_operations=True, request_timeout=timeout
    )
    for topic, future in futures.items():
        try:
            description = future.result(timeout=timeout)
            out[topic] = {op.name for op in description.authorized_operations or []}
        except KafkaException as exc:
            out[topic] = exc.args[0].str()
    return out


def _group_operations(admin: Any, groups: list[str], timeout: float) -> dict[str, set[str] | str]:
    """Operations the user may perform on each group. A coordinator that is still being elected
    (a fresh cluster creates its offsets topic on first use) answers with a retriable error:
    asked again until ``timeout``."""
    from confluent_kafka import KafkaException

    out: dict[str, set[str] | str] = {}
    pending = list(groups)
    deadline = time.monotonic() + timeout
    while pending:
        futures = admin.describe_consumer_groups(
            pending, include_authorized_operations=True, request_timeout=timeout
        )
        retry = []
        for group, future in futures.items():
            try:
                description = future.result(timeout=timeout)
                out[group] = {op.name for op in description.authorized_operations or []}
            except KafkaException as exc:
                error = exc.args[0]
                out[group] = error.str() or error.name()
                if error.retriable() or not error.str().split(":")[-1].strip():
                    retry.append(group)
        if not retry or time.monotonic() >= deadline:
            break
        pending = retry
        time.sleep(0.5)
    return out


def _may_create(admin: Any, prefix: str, timeout: float) -> str | None:
    """None if the user may create topics under ``prefix`` (asked with validate_only, nothing
    is created), else the broker's answer. A controller still being found is asked again."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    probe = f"{prefix}-doctor-probe"
    deadline = time.monotonic() + timeout
    while True:
        futures = admin.create_topics(
            [NewTopic(probe, 1, -1)], validate_only=True, request_timeout=timeout
        )
        try:
            futures[probe].result(timeout=timeout)
            return None
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return None
            transient = error.retriable() or error.code() == KafkaError._TIMED_OUT
            if not transient or time.monotonic() >= deadline:
                return str(error.str())
        time.sleep(0.5)


def _implied(operations: set[str], wanted: str) -> bool:
    return wanted in operations or "ALL" in operations


def _authorisation(
    settings: Settings,
    admin: Any,
    services: list[str],
    timeout: float,
    *,
    with_optional: bool = True,
) -> list[Check]:
    grants = [
        g for s in services for g in service_grants(settings)[s] if with_optional or not g.optional
    ]
    literal_topics = sorted(
        {g.name for g in grants if g.resource == "topic" and g.pattern == "literal"}
    )
    groups = sorted({g.name for g in grants if g.resource == "group"})
    topic_ops = _topic_operations(admin, literal_topics, timeout) if literal_topics else {}
    group_ops = _group_operations(admin, groups, timeout) if groups else {}
    missing: list[str] = []
    optional: list[str] = []
    user = settings.kafka_username or "(anonymous)"
    for grant in grants:
        found = optional if grant.optional else missing
        if grant.resource == "topic" and grant.pattern == "prefixed":
            if grant.operation == "CREATE":
                refused = _may_create(admin, grant.name, timeout)
                if refused is not None:
                    found.append(_describe_missing(grant, refused))
            continue  # READ/WRITE on a topic that does not exist yet cannot be asked about
        known = (
            topic_ops.get(grant.name) if grant.resource == "topic" else group_ops.get(grant.name)
        )
        if isinstance(known, str):
            found.append(_describe_missing(grant, known))
        elif known is not None and not _implied(known, grant.operation):
            found.append(_describe_missing(grant, "not allowed"))
    scope = ", ".join(services)
    checks: list[Check] = []
    if missing:
        checks.append(
            Check(
                "Kafka",
                "authorised",
                "fail",
                f"user {user} lacks, for {scope}: "
                + "; ".join(sorted(set(missing)))
                + " — grant the ACLs the README lists (Deploying on your infrastructure)",
            )
        )
    else:
        held = sum(1 for g in grants if not g.optional)
        checks.append(
            Check("Kafka", "authorised", "ok", f"user {user}: {held} ACLs of {scope} hold")
        )
    if optional:
        checks.append(
            Check(
                "Kafka",
                "agent engine",
                "note",
                "missing what only `persona stream --engine agent` needs: "
                + "; ".join(sorted(set(optional))),
            )
        )
    return checks


def _describe_missing(grant: Grant, why: str) -> str:
    pattern = " (prefix)" if grant.pattern == "prefixed" else ""
    return f"{grant.operation} on {grant.resource} {grant.name}{pattern} [{why}]"


def _topics(settings: Settings, admin: Any, services: list[str], timeout: float) -> list[Check]:
    """The topics the chosen services use exist, with the configured partitions, replication
    and configs (a service's user sees only the topics its ACLs name)."""
    from personas.kafka import topic_drift, topic_specs

    used = {
        g.name
        for s in services
        for g in service_grants(settings)[s]
        if g.resource == "topic" and g.pattern == "literal"
    }
    specs = [s for s in topic_specs(settings) if s.name in used]
    visible = admin.list_topics(timeout=timeout).topics
    absent = [s.name for s in specs if s.name not in visible]
    if absent:
        return [
            Check(
                "Kafka",
                "topics",
                "fail",
                f"missing (or not visible to this user): {', '.join(absent)} — create them as an "
                "admin: `persona topics create`",
            )
        ]
    unreadable: list[str] = []
    drift = topic_drift(admin, specs, timeout, unreadable)
    if drift:
        return [
            Check(
                "Kafka",
                "topics",
                "fail",
                "differ from the settings: " + "; ".join(str(d) for d in drift),
            )
        ]
    shape = ", ".join(f"{s.name} {len(visible[s.name].partitions)}p" for s in specs)
    rf = settings.kafka_replication_factor
    detail = f"{len(specs)} present, replication {rf}: {shape}"
    if unreadable:
        detail += " (configs not readable by this user: partitions and replication checked)"
    return [Check("Kafka", "topics", "ok", detail)]


def require_kafka(
    settings: Settings, service: str, *, with_optional: bool = False, timeout: float = 10.0
) -> None:
    """Start-up check of a service: the cluster answers, accepts our credentials and lets us do
    what ``service`` does (``with_optional``: in the mode that needs the optional grants too);
    raises ServiceUnavailable with the doctor's line otherwise."""
    checks, admin = _kafka_checks(settings, [service], timeout)
    if admin is not None:
        checks += _authorisation(settings, admin, [service], timeout, with_optional=with_optional)
    for check in checks:
        if not check.ok:
            reason, _, fix = check.detail.partition(" — ")
            raise ServiceUnavailable(
                "Kafka", settings.kafka_bootstrap, f"{check.what}: {reason}", fix
            )


# --- PostgreSQL ------------------------------------------------------------------------------


def _postgres_checks(settings: Settings, timeout: float) -> list[Check]:
    import psycopg

    from personas import db

    params = settings.pg_params()
    where = settings.pg_dsn(with_password=False)
    host, port = params.get("host", ""), params.get("port", "5432")
    if host and not host.startswith("/"):
        why = _tcp(f"{host}:{port}", timeout)
        if why is not None:
            return [
                Check(
                    "PostgreSQL",
                    "reachable",
                    "fail",
                    f"{host}:{port}: {why} — check PERSONA_PG_HOST/PORT or PERSONA_PG_URL; "
                    "local stack: `make up`",
                )
            ]
    checks = [Check("PostgreSQL", "reachable", "ok", where)]
    try:
        conn = db.connect(settings, autocommit=True, timeout=timeout)
    except ServiceUnavailable as exc:
        what = "TLS verified" if "TLS" in exc.reason else "authenticated"
        return [*checks, Check("PostgreSQL", what, "fail", f"{exc.reason} — {exc.hint}")]
    with conn:
        ssl_in_use = bool(conn.pgconn.ssl_in_use)
        mode = params.get("sslmode", "prefer")
        if ssl_in_use and mode == "verify-full":
            checks.append(Check("PostgreSQL", "TLS verified", "ok", "certificate and host name"))
        elif ssl_in_use:
            checks.append(
                Check(
                    "PostgreSQL",
                    "TLS verified",
                    "note",
                    f"encrypted, certificate not verified (sslmode={mode}; verify-full checks it)",
                )
            )
        else:
            checks.append(Check("PostgreSQL", "TLS verified", "note", f"not used (sslmode={mode})"))
        checks.append(Check("PostgreSQL", "authenticated", "ok", f"as {params.get('user', '?')}"))
    try:
        pending = db.pending_migrations(settings)
    except (ServiceUnavailable, psycopg.Error) as exc:
        return [*checks, Check("PostgreSQL", "schema", "fail", str(exc).splitlines()[0])]
    if pending:
        checks.append(
            Check(
                "PostgreSQL",
                "schema",
                "fail",
                f"{settings.pg_schema}: pending {', '.join(pending)} — `persona db migrate`",
            )
        )
    else:
        checks.append(Check("PostgreSQL", "schema", "ok", f"{settings.pg_schema}: migrated"))
    return checks


# --- MLflow ----------------------------------------------------------------------------------


def _mlflow_checks(settings: Settings, timeout: float) -> list[Check]:
    import os
    import urllib.error
    import urllib.request

    from personas import registry

    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
                pass
        except urllib.error.HTTPError:
            pass  # it answered; authentication is the next check's business
        except OSError as exc:
            reason = getattr(exc, "reason", exc)
            return [
                Check(
                    "MLflow",
                    "reachable",
                    "fail",
                    f"{uri}: {reason} — check PERSONA_MLFLOW_TRACKING_URI; local stack: `make up`",
                )
            ]
    checks = [Check("MLflow", "reachable", "ok", uri)]
    who = os.environ.get("MLFLOW_TRACKING_USERNAME")
    auth = (
        f"as {who}"
        if who
        else ("with a token" if os.environ.get("MLFLOW_TRACKING_TOKEN") else "no credentials")
    )
    from mlflow.exceptions import MlflowException

    try:
        registry.client(settings).search_registered_models(max_results=1)
    except (MlflowException, OSError) as exc:
        what, fix = registry.explain_mlflow_error(exc)
        return [*checks, Check("MLflow", "authenticated", "fail", f"{what} — {fix}")]
    checks.append(Check("MLflow", "authenticated", "ok", auth))
    try:
        version = registry.champion_version(settings)
    except PersonaError as exc:
        return [*checks, Check("MLflow", "champion", "fail", str(exc))]
    if version is None:
        checks.append(
            Check(
                "MLflow",
                "champion",
                "fail",
                f"{settings.model_name}@{settings.champion_alias} is not registered — "
                "`persona train bootstrap --reference <month>.parquet`",
            )
        )
    else:
        checks.append(
            Check("MLflow", "champion", "ok", f"{settings.model_name} v{version} is the champion")
        )
    return checks


def diagnose(
    settings: Settings,
    services: Iterable[str] = SERVICES,
    *,
    timeout: float = 5.0,
    on_check: Callable[[Check], None] | None = None,
) -> list[Check]:
    """Every check, in order; ``on_check`` sees each as soon as it is known."""
    chosen = list(services)
    unknown = [s for s in chosen if s not in SERVICES]
    if unknown:
        raise ConfigError(f"unknown service {unknown[0]!r}; choose from {', '.join(SERVICES)}")
    out: list[Check] = []

    def emit(checks: Iterable[Check]) -> None:
        for check in checks:
            out.append(check)
            if on_check is not None:
                on_check(check)

    kafka, admin = _kafka_checks(settings, chosen, timeout)
    emit(kafka)
    if admin is not None:
        emit(_authorisation(settings, admin, chosen, timeout))
        emit(_topics(settings, admin, chosen, timeout))
    emit(_postgres_checks(settings, timeout))
    emit(_mlflow_checks(settings, timeout))
    return out
