"""The "cluster" profile of the local stack: three Kafka nodes (combined broker + controller, KRaft
quorum of three) with SASL_SSL for clients, mutual TLS between the nodes, the StandardAuthorizer
and one SCRAM user per service holding exactly the ACLs of :mod:`personas.access`; PostgreSQL that
accepts only TLS with a password; MLflow with basic auth on that PostgreSQL. It runs beside the
default stack on its own ports, from the same jars, with its files in ``<stack_dir>/cluster/``.

Everything secret is generated at the first start and kept there (``tls/``, ``secrets/``, mode
0600); ``client.env`` and ``users/<service>.env`` hold the settings a client needs
(:func:`cluster_env`, :func:`cluster_settings` compute the same values for code). See
docs/cluster.md.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from infra.stack.kafka import KafkaService
from infra.stack.layout import Layout, ServiceStatus
from infra.stack.mlflow_server import MlflowAuth, MlflowService
from infra.stack.postgres import PostgresService, PostgresTls
from infra.stack.secret_files import SecretFiles
from infra.stack.tls import Certificates, ensure_certificates
from personas.access import SERVICES, acl_bindings
from personas.errors import StackError
from personas.kafka import admin_config
from personas.settings import Settings

if TYPE_CHECKING:
    from confluent_kafka.admin import AclBinding  # type: ignore[attr-defined]

__all__ = [
    "ADMIN",
    "NOACL",
    "PROFILE",
    "Cluster",
    "ClusterSettings",
    "KafkaNode",
    "cluster_env",
    "cluster_settings",
    "down",
    "kill_node",
    "start_node",
    "status",
    "up",
]

PROFILE = "cluster"
HOST = "127.0.0.1"  # every service of the profile binds it; the certificates name it
ADMIN = "admin"  # super user: topics, ACLs, SCRAM users
NOACL = "noacl"  # a valid user with no ACL at all (tests of the refusal)
BROKER = "broker"  # CN of the nodes' certificate = principal of inter-node traffic
MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 4096


def _port_list(value: Any) -> Any:
    """``29092,29192,29292`` (or JSON ``[29092, …]``) from the environment."""
    if isinstance(value, str):
        text = value.strip().removeprefix("[").removesuffix("]")
        return [int(p) for p in text.split(",") if p.strip()]
    return value


PortList = Annotated[list[int], NoDecode]


class ClusterSettings(BaseSettings):
    """Ports and sizing of the cluster profile. Env: ``PERSONA_CLUSTER_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="PERSONA_CLUSTER_", env_file=".env", extra="ignore", frozen=True
    )

    kafka_ports: PortList = Field(
        [29092, 29192, 29292], description="SASL_SSL client listener of nodes 1, 2, 3."
    )
    internal_ports: PortList = Field(
        [29093, 29193, 29293], description="Inter-broker listener (mutual TLS) of nodes 1, 2, 3."
    )
    controller_ports: PortList = Field(
        [29094, 29194, 29294], description="KRaft controller listener (mutual TLS), nodes 1-3."
    )
    pg_port: int = Field(25433, description="PostgreSQL of the cluster profile (TLS only).")
    mlflow_port: int = Field(25050, description="MLflow of the cluster profile (basic auth).")
    kafka_heap_min: str = Field("256m", description="-Xms of each Kafka node.")
    kafka_heap_max: str = Field("768m", description="-Xmx of each Kafka node.")

    _split = field_validator("kafka_ports", "internal_ports", "controller_ports", mode="before")(
        _port_list
    )

    @model_validator(mode="after")
    def _three_nodes(self) -> ClusterSettings:
        lists = (self.kafka_ports, self.internal_ports, self.controller_ports)
        if any(len(ports) != 3 for ports in lists):
            raise ValueError(
                "PERSONA_CLUSTER_KAFKA_PORTS, _INTERNAL_PORTS and _CONTROLLER_PORTS need three "
                "ports each (one per node)"
            )
        every = [*self.kafka_ports, *self.internal_ports, *self.controller_ports]
        every += [self.pg_port, self.mlflow_port]
        if len(set(every)) != len(every):
            raise ValueError("the cluster profile's ports must all differ")
        return self

    @property
    def node_ids(self) -> range:
        return range(1, len(self.kafka_ports) + 1)

    @property
    def host(self) -> str:
        return HOST

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{p}" for p in self.kafka_ports)


class Cluster:
    """The profile's services and files, derived from the shared and the cluster settings."""

    def __init__(self, settings: Settings, conf: ClusterSettings | None = None) -> None:
        self.base = settings
        self.conf = conf if conf is not None else ClusterSettings()
        self.layout = Layout.from_settings(settings, PROFILE)
        self.root = self.layout.root
        self.certs = Certificates(self.root / "tls")
        self.secrets = SecretFiles(self.root / "secrets")

    # --- users and the settings clients use ------------------------------------------------

    @property
    def users(self) -> list[str]:
        """Every SCRAM user: the admin, one per service of personas.access, and ``noacl``."""
        return [ADMIN, *SERVICES, NOACL]

    def kafka_secret(self, user: str) -> Path:
        return self.secrets.path(f"kafka-{user}")

    def persona_env(self, user: str = ADMIN) -> dict[str, str]:
        """The PERSONA_* variables of a client of this cluster logged in as ``user``."""
        c = self.conf
        replication = min(3, len(c.kafka_ports))
        return {
            "PERSONA_KAFKA_BOOTSTRAP_SERVERS": c.bootstrap,
            "PERSONA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "PERSONA_KAFKA_SASL_MECHANISM": MECHANISM,
            "PERSONA_KAFKA_USERNAME": user,
            "PERSONA_KAFKA_PASSWORD_FILE": str(self.kafka_secret(user)),
            "PERSONA_KAFKA_SSL_CA_FILE": str(self.certs.ca),
            "PERSONA_KAFKA_REPLICATION_FACTOR": str(replication),
            "PERSONA_KAFKA_MIN_INSYNC_REPLICAS": str(max(1, replication - 1)),
            "PERSONA_PG_HOST": c.host,
            "PERSONA_PG_PORT": str(c.pg_port),
            "PERSONA_PG_USER": self.base.pg_user,
            "PERSONA_PG_PASSWORD_FILE": str(self.secrets.path("postgres")),
            "PERSONA_PG_SSLMODE": "verify-full",
            "PERSONA_PG_SSLROOTCERT": str(self.certs.ca),
            "PERSONA_MLFLOW_HOST": c.host,
            "PERSONA_MLFLOW_PORT": str(c.mlflow_port),
            "PERSONA_MLFLOW_TRACKING_URI": f"http://{c.host}:{c.mlflow_port}",
        }

    def mlflow_env(self) -> dict[str, str]:
        """MLflow's own client variables (it reads the password from the environment only)."""
        return {
            "MLFLOW_TRACKING_USERNAME": ADMIN,
            "MLFLOW_TRACKING_PASSWORD": self.secrets.get("mlflow-admin"),
        }

    def env(self, user: str = ADMIN) -> dict[str, str]:
        return {**self.persona_env(user), **self.mlflow_env()}

    def settings(self, user: str = ADMIN) -> Settings:
        """The shared settings pointed at this cluster as ``user`` (topics, schema, names kept)."""
        prefix = "PERSONA_"
        values = {k.removeprefix(prefix).lower(): v for k, v in self.persona_env(user).items()}
        values["pg_url"] = ""  # a DSN in the environment would win over the cluster's parts
        return Settings.model_validate({**self.base.model_dump(), **values})

    def env_file(self, user: str = ADMIN) -> Path:
        return self.root / "client.env" if user == ADMIN else self.root / "users" / f"{user}.env"

    def write_env_files(self) -> None:
        for user in self.users:
            path = self.env_file(user)
            path.parent.mkdir(parents=True, exist_ok=True)
            text = "".join(f"{k}={shlex.quote(v)}\n" for k, v in self.env(user).items())
            header = (
                f"# Settings of a client of the cluster profile as Kafka user {user!r}.\n"
                "# Written by `persona stack up --profile cluster`; `set -a; . THIS; set +a`.\n"
            )
            _write_private(path, header + text)

    # --- services ----------------------------------------------------------------------------

    def node(self, n: int) -> KafkaNode:
        if n not in self.conf.node_ids:
            raise StackError(f"the cluster has nodes {list(self.conf.node_ids)}, not {n}")
        return KafkaNode(self, n)

    def nodes(self) -> list[KafkaNode]:
        return [KafkaNode(self, n) for n in self.conf.node_ids]

    def postgres(self) -> PostgresService:
        return PostgresService(
            self.settings(),
            self.layout,
            tls=PostgresTls(self.certs.postgres_cert, self.certs.postgres_key),
            port_variable="PERSONA_CLUSTER_PG_PORT",
        )

    def mlflow(self) -> MlflowService:
        auth = MlflowAuth(
            admin_username=ADMIN,
            admin_password_file=self.secrets.path("mlflow-admin"),
            flask_secret_key_file=self.secrets.path("mlflow-flask-key"),
            database=self.layout.service_dir("mlflow") / "basic_auth.db",
        )
        return MlflowService(
            self.settings(),
            self.layout,
            auth=auth,
            port_variable="PERSONA_CLUSTER_MLFLOW_PORT",
        )

    def cluster_id(self) -> str:
        """One id for the three nodes' storage, made once."""
        path = self.root / "cluster.id"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(KafkaService.new_cluster_id() + "\n")
        return path.read_text().strip()

    def prepare(self) -> None:
        """Everything the services need before the first of them starts (idempotent)."""
        self.root.mkdir(parents=True, exist_ok=True)
        ensure_certificates(self.certs.folder)
        for user in self.users:
            self.secrets.get(f"kafka-{user}")
        for name in ("postgres", "mlflow-admin", "mlflow-flask-key"):
            self.secrets.get(name)
        self.cluster_id()
        self.write_env_files()
        KafkaService(self.base, self.layout).fetch()  # once, before three nodes want the jars

    # --- what `up` does once the nodes answer -----------------------------------------------

    def admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        return AdminClient(admin_config(self.settings(ADMIN), log_level=0))

    def ensure_users(self, timeout: float = 30.0) -> list[str]:
        """Create the SCRAM users the cluster lacks (the storage format made them at the first
        start; a user added since is created here). Returns the names created."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import (  # type: ignore[attr-defined]
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        admin = self.admin()
        try:
            existing = set(
                admin.describe_user_scram_credentials(request_timeout=timeout).result(timeout)
            )
        except KafkaException as exc:
            raise StackError(f"listing the cluster's SCRAM users failed: {exc}") from None
        missing = [u for u in self.users if u not in existing]
        if not missing:
            return []
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
        upserts = [
            UserScramCredentialUpsertion(u, info, self.secrets.get(f"kafka-{u}").encode())
            for u in missing
        ]
        for user, future in admin.alter_user_scram_credentials(
            upserts, request_timeout=timeout
        ).items():
            try:
                future.result(timeout=timeout)
            except Exception as exc:
                raise StackError(f"creating the SCRAM user {user} failed: {exc}") from None
        return missing

    def desired_acls(self) -> list[AclBinding]:
        return [binding for _, binding in acl_bindings(self.settings(ADMIN))]

    def existing_acls(self, admin: Any = None, timeout: float = 30.0) -> list[AclBinding]:
        from confluent_kafka.admin import (  # type: ignore[attr-defined]
            AclBindingFilter,
            AclOperation,
            AclPermissionType,
            ResourcePatternType,
            ResourceType,
        )

        every = AclBindingFilter(
            ResourceType.ANY,
            None,  # type: ignore[arg-type]  # None matches any name, principal, host
            ResourcePatternType.ANY,
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        admin = admin if admin is not None else self.admin()  # kept alive until the answer
        found: list[AclBinding] = admin.describe_acls(every, request_timeout=timeout).result(
            timeout=timeout
        )
        return found

    def ensure_acls(self, *, prune: bool = False, timeout: float = 30.0) -> tuple[int, list[str]]:
        """Create the ACLs of personas.access that are missing (idempotent). ACLs beyond them are
        listed, and deleted only with ``prune`` (tests may grant their own topics meanwhile).
        Returns (ACLs created, the extra ones as text)."""
        from confluent_kafka.admin import AclBindingFilter  # type: ignore[attr-defined]

        admin = self.admin()
        desired = set(self.desired_acls())
        existing = set(self.existing_acls(admin, timeout))
        missing = sorted(desired - existing, key=str)
        extra = sorted(existing - desired, key=str)
        if missing:
            for binding, future in admin.create_acls(missing, request_timeout=timeout).items():
                try:
                    future.result(timeout=timeout)
                except Exception as exc:
                    raise StackError(f"creating ACL {binding} failed: {exc}") from None
        if prune and extra:
            filters = [
                AclBindingFilter(
                    b.restype,
                    b.name,
                    b.resource_pattern_type,
                    b.principal,
                    b.host,
                    b.operation,
                    b.permission_type,
                )
                for b in extra
            ]
            for future in admin.delete_acls(filters, request_timeout=timeout).values():
                future.result(timeout=timeout)
        return len(missing), [str(b) for b in extra]


class KafkaNode(KafkaService):
    """Node ``n`` of the cluster: broker and controller in one JVM, its own PID file and log."""

    def __init__(self, cluster: Cluster, n: int) -> None:
        self.cluster = cluster
        self.n = n
        self.name = f"kafka-{n}"
        self.label = f"Kafka node {n}"
        super().__init__(cluster.base, cluster.layout)
        self.marker = str(self.config)  # the command line names this node's own file

    @property
    def address(self) -> str:
        return f"{self.cluster.conf.host}:{self.cluster.conf.kafka_ports[self.n - 1]}"

    def ports(self) -> list[tuple[str, int, str]]:
        c, i = self.cluster.conf, self.n - 1
        return [
            (c.host, c.kafka_ports[i], "PERSONA_CLUSTER_KAFKA_PORTS"),
            (c.host, c.internal_ports[i], "PERSONA_CLUSTER_INTERNAL_PORTS"),
            (c.host, c.controller_ports[i], "PERSONA_CLUSTER_CONTROLLER_PORTS"),
        ]

    def heap(self) -> list[str]:
        c = self.cluster.conf
        return [f"-Xms{c.kafka_heap_min}", f"-Xmx{c.kafka_heap_max}"]

    def properties(self) -> list[str]:
        c, i = self.cluster.conf, self.n - 1
        certs = self.cluster.certs
        voters = ",".join(f"{n}@{c.host}:{c.controller_ports[n - 1]}" for n in c.node_ids)
        replication = min(3, len(c.kafka_ports))
        min_isr = max(1, replication - 1)
        return [
            f"node.id={self.n}",
            f"controller.quorum.voters={voters}",
            f"listeners=CLIENT://{c.host}:{c.kafka_ports[i]},"
            f"INTERNAL://{c.host}:{c.internal_ports[i]},"
            f"CONTROLLER://{c.host}:{c.controller_ports[i]}",
            f"advertised.listeners=CLIENT://{c.host}:{c.kafka_ports[i]},"
            f"INTERNAL://{c.host}:{c.internal_ports[i]}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=INTERNAL",
            "listener.security.protocol.map=CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL",
            # Clients: SCRAM over TLS (server certificate only). Nodes: mutual TLS, the
            # certificate's CN is the principal (User:broker).
            f"sasl.enabled.mechanisms={MECHANISM}",
            f"listener.name.client.sasl.enabled.mechanisms={MECHANISM}",
            f"listener.name.client.{MECHANISM.lower()}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={certs.broker_keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={certs.ca}",
            "ssl.client.auth=required",
            "listener.name.client.ssl.client.auth=none",
            "ssl.endpoint.identification.algorithm=https",
            "ssl.principal.mapping.rules=RULE:^CN=([a-zA-Z0-9._-]+)$/$1/,DEFAULT",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            f"super.users=User:{BROKER};User:{ADMIN}",
            # Durability: three copies, two must have a write before it is acknowledged.
            f"num.partitions={self.settings.kafka_partitions}",
            f"default.replication.factor={replication}",
            f"min.insync.replicas={min_isr}",
            f"offsets.topic.replication.factor={replication}",
            f"transaction.state.log.replication.factor={replication}",
            f"transaction.state.log.min.isr={min_isr}",
            "transaction.state.log.num.partitions=10",
            f"share.coordinator.state.topic.replication.factor={replication}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            # Three JVMs share two cores: fewer request threads than Kafka's defaults (3 + 8).
            "num.network.threads=2",
            "num.io.threads=4",
        ]

    def cluster_id(self) -> str:
        return self.cluster.cluster_id()

    def format_arguments(self) -> list[str]:
        """SCRAM users of the bootstrap metadata (KIP-900): the admin must exist before anyone
        can log in to create the others. Each node's storage is formatted with the same list."""
        args = []
        for user in self.cluster.users:
            password = self.cluster.secrets.get(f"kafka-{user}")
            args += ["--add-scram", f"{MECHANISM}=[name={user},password={password}]"]
        return args

    def client_settings(self) -> Settings:
        """The admin's settings with this node alone as bootstrap."""
        return self.cluster.settings(ADMIN).model_copy(
            update={"kafka_bootstrap_servers": self.address}
        )

    def answered(self, metadata: Any) -> bool:
        """This node answered and the cluster counts it among its live brokers."""
        return self.n in metadata.brokers

    def detail(self) -> str:
        return f"node {self.n} (broker+controller), SASL_SSL, Apache Kafka {self.settings.kafka_version}"


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (created 0600, never briefly wider)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    tmp.replace(path)


# --- the API: profile-level up / down / status, one node at a time, client settings -----------


def cluster_settings(settings: Settings | None = None, user: str = ADMIN) -> Settings:
    """Settings of a client of the cluster profile logged in as ``user`` (``admin``, a service
    of personas.access, or ``noacl``); the same values as ``client.env`` / ``users/<user>.env``."""
    return Cluster(settings if settings is not None else Settings()).settings(user)


def cluster_env(settings: Settings | None = None, user: str = ADMIN) -> dict[str, str]:
    """The environment of such a client: PERSONA_* plus MLflow's MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD (the MLflow admin)."""
    return Cluster(settings if settings is not None else Settings()).env(user)


def start_node(settings: Settings, n: int) -> str:
    """Start node ``n`` if it is not running (e.g. after :func:`kill_node`); waits until the
    cluster counts it live again. "started" or "already running"."""
    cluster = Cluster(settings)
    cluster.prepare()
    return cluster.node(n).start()


def kill_node(settings: Settings, n: int) -> int | None:
    """SIGKILL node ``n`` and wait until it is gone; its PID, or None if it was not running."""
    return Cluster(settings).node(n).kill()


def _timed(say: Callable[[str], None], name: str, start: Callable[[], str]) -> str:
    t0 = time.monotonic()
    outcome = start()
    say(f"{name:<9} {outcome} ({time.monotonic() - t0:.1f} s)")
    return outcome


def up(settings: Settings, say: Callable[[str], None] = print) -> None:
    """Start what is not running (idempotent; a killed node is started again), then the SCRAM
    users, the ACLs, the topics (replicated) and the migrations."""
    from personas import db
    from personas.kafka import create_topics

    cluster = Cluster(settings)
    cluster.prepare()
    postgres = cluster.postgres()
    say(f"{'postgres':<9} {postgres.address} … ")
    _timed(say, "postgres", postgres.start)
    # The nodes need each other for the quorum: all three at once, MLflow beside them.
    services: list[KafkaNode | MlflowService] = [*cluster.nodes(), cluster.mlflow()]
    for service in services:
        say(f"{service.name:<9} {service.address} … ")
    lock = threading.Lock()

    def locked_say(line: str) -> None:
        with lock:
            say(line)

    with ThreadPoolExecutor(len(services)) as pool:
        futures = [pool.submit(_timed, locked_say, s.name, s.start) for s in services]
    failures = [str(f.exception()) for f in futures if f.exception() is not None]
    if failures:
        raise StackError("the cluster did not start:\n" + "\n".join(failures))
    admin_settings = cluster.settings(ADMIN)
    created_users = cluster.ensure_users()
    say(f"users     {len(cluster.users)} SCRAM users" + _created(created_users))
    acls, extra = cluster.ensure_acls()
    say(
        f"acls      {len(cluster.desired_acls())} ACLs of personas.access, {acls} created"
        + (f"; {len(extra)} others kept (not in that table)" if extra else "")
    )
    created, drift = create_topics(admin_settings, fix_configs=True)  # its own topics
    say(f"topics    {len(created)} created" + (f": {', '.join(created)}" if created else ""))
    for topic in drift:
        say(f"topics    differs: {topic}")
    applied = db.apply_migrations(admin_settings)
    say(
        f"schema    {admin_settings.pg_schema}: "
        + (f"applied {', '.join(applied)}" if applied else "up to date")
    )
    say(f"clients   {cluster.env_file(ADMIN)} (admin), {cluster.root / 'users'}/<user>.env")


def _created(names: list[str]) -> str:
    return f", created {', '.join(names)}" if names else ""


def down(settings: Settings, say: Callable[[str], None] = print) -> None:
    """Stop exactly what `up --profile cluster` started (by PID file), MLflow first."""
    cluster = Cluster(settings)
    mlflow = cluster.mlflow()
    say(f"{mlflow.name:<9} {mlflow.stop()}")
    nodes = cluster.nodes()
    with ThreadPoolExecutor(len(nodes)) as pool:
        outcomes = list(pool.map(lambda node: node.stop(), nodes))
    for node, outcome in zip(nodes, outcomes, strict=True):
        say(f"{node.name:<9} {outcome}")
    postgres = cluster.postgres()
    say(f"{postgres.name:<9} {postgres.stop()}")


def status(settings: Settings) -> list[ServiceStatus]:
    cluster = Cluster(settings)
    return [
        cluster.postgres().status(),
        *(node.status() for node in cluster.nodes()),
        cluster.mlflow().status(),
    ]
