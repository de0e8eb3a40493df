"""Apache Kafka, single node in KRaft mode, from Maven Central jars and the machine's Java.

Why jars and not a tarball: Maven Central is the registry we can reach; `kafka_2.13` with its
runtime dependencies is exactly the broker. First start fetches ~45 jars (~40 MB) once into the
cache folder; later starts take a few seconds.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

from infra.stack.detached import DetachedService
from infra.stack.layout import Layout
from infra.stack.process import (
    file_lock,
    log_tail,
    port_open,
)
from personas.errors import StackError
from personas.kafka import admin_config
from personas.settings import Settings

__all__ = ["KafkaService"]

MARKER = "kafka.Kafka"
START_TIMEOUT = 90.0

LOG4J2 = """Configuration:
  status: warn
  Appenders:
    File:
      name: file
      fileName: "{log}"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: file
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: state.change.logger
        level: WARN
"""


def _java_arg(arg: str) -> str:
    """One argument of a Java @argfile: quoted, with backslashes and quotes escaped."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


class KafkaService(DetachedService):
    name = "kafka"
    label = "Kafka"
    marker = MARKER
    start_timeout = START_TIMEOUT
    stop_timeout = 60.0
    port_settings = (("kafka_host", "kafka_port"), ("kafka_host", "kafka_controller_port"))

    def __init__(self, settings: Settings, layout: Layout) -> None:
        super().__init__(settings, layout)
        self.home = layout.service_dir(self.name)
        self.libs = layout.cache / f"kafka-{settings.kafka_version}" / "libs"

    @property
    def address(self) -> str:
        return self.settings.kafka_bootstrap

    def fetch(self) -> Path:
        """Download the broker jars with Maven once; a marker file records a complete fetch."""
        done = self.libs / ".complete"
        if done.exists():
            return self.libs
        with file_lock(self.libs.parent / ".fetch.lock"):  # another `stack up` may be fetching
            if not done.exists():
                self._fetch(done)
        return self.libs

    def _fetch(self, done: Path) -> None:
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("Maven (mvn) is not installed: it fetches the Kafka broker jars")
        if shutil.which("java") is None:
            raise StackError(
                "Java is not installed: Kafka needs Java 17 or newer (apt-get install openjdk-17-jre-headless)"
            )
        pom = resources.files("infra").joinpath("kafka/pom.xml")
        self.libs.mkdir(parents=True, exist_ok=True)
        log = self.layout.log_file("kafka-fetch")
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            result = subprocess.run(
                [
                    mvn,
                    "-B",
                    "-q",
                    "-f",
                    str(pom),
                    "dependency:copy-dependencies",
                    f"-Dkafka.version={self.settings.kafka_version}",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={self.libs}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=900,
                check=False,
            )
        if result.returncode != 0:
            raise StackError(
                f"fetching Kafka {self.settings.kafka_version} with Maven failed; see {log}:\n"
                + log_tail(log)
            )
        done.write_text(self.settings.kafka_version + "\n")

    #: Properties every node of ours has, whatever its listeners and security.
    COMMON = (
        "process.roles=broker,controller",
        "group.initial.rebalance.delay.ms=0",
        # Replays must be able to write a month-old timestamp; future ones stay capped.
        "log.message.timestamp.before.max.ms=9223372036854775807",
        "auto.create.topics.enable=false",
        "delete.topic.enable=true",
        "offsets.topic.num.partitions=10",
    )

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def config(self) -> Path:
        return self.home / "server.properties"

    def heap(self) -> list[str]:
        return ["-Xms256m", "-Xmx1g"]

    def properties(self) -> list[str]:
        """This node's server.properties, beyond COMMON and log.dirs."""
        s = self.settings
        return [
            "node.id=1",
            f"controller.quorum.voters=1@{s.kafka_host}:{s.kafka_controller_port}",
            f"listeners=PLAINTEXT://{s.kafka_host}:{s.kafka_port},"
            f"CONTROLLER://{s.kafka_host}:{s.kafka_controller_port}",
            f"advertised.listeners=PLAINTEXT://{s.kafka_host}:{s.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"num.partitions={s.kafka_partitions}",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
        ]

    def _write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        lines = [*self.COMMON, *self.properties(), f"log.dirs={self.data}", ""]
        self.config.write_text("\n".join(lines))
        (self.home / "log4j2.yaml").write_text(LOG4J2.format(log=self.log))
        return self.config

    @staticmethod
    def new_cluster_id() -> str:
        """A random KRaft cluster id (the 22-character base64 form of a UUID)."""
        return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")

    def cluster_id(self) -> str:
        """The id the storage is formatted with (a node of a cluster shares its cluster's)."""
        return self.new_cluster_id()

    def format_arguments(self) -> list[str]:
        """More arguments of `kafka-storage format` (SCRAM users of a secured cluster)."""
        return []

    def _format_storage(self, config: Path) -> None:
        if (self.data / "meta.properties").exists():
            return
        args = ["format", "-t", self.cluster_id(), "-c", str(config), *self.format_arguments()]
        # The main class and its arguments go through a Java argument file (mode 0600, deleted
        # at once): SCRAM passwords among them must not appear in `ps`.
        argfile = self.home / "format.args"
        argfile.unlink(missing_ok=True)
        fd = os.open(argfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(_java_arg(a) for a in ["kafka.tools.StorageTool", *args]) + "\n")
        try:
            result = subprocess.run(
                ["java", "-cp", f"{self.libs}/*", f"@{argfile}"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            argfile.unlink(missing_ok=True)
        if result.returncode != 0:
            # The format command echoes records, never passwords; its errors name the problem.
            raise StackError(
                f"formatting {self.label} storage failed: {(result.stdout + result.stderr)[-800:]}"
            )

    def client_settings(self) -> Settings:
        """How the stack's own clients (readiness check) reach this service."""
        return self.settings

    def answers(self) -> bool:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        host, port, _ = self.ports()[0]
        if not port_open(host, port):
            return False
        try:
            metadata = AdminClient(admin_config(self.client_settings(), log_level=0)).list_topics(
                timeout=3
            )
        except KafkaException:
            return False
        return self.answered(metadata)

    def answered(self, metadata: Any) -> bool:
        """Whether a metadata answer means the service is up (a node of a cluster: it is live)."""
        return True

    def prepare(self) -> tuple[list[str], dict[str, str], Path]:
        self.fetch()
        config = self._write_config()
        self._format_storage(config)
        env = dict(os.environ)
        env.pop("CLASSPATH", None)
        argv = [
            "java",
            *self.heap(),
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.yaml'}",
            f"-Dkafka.logs.dir={self.log.parent}",
            "-cp",
            f"{self.libs}/*",
            MARKER,
            str(config),
        ]
        return argv, env, self.layout.log_file(self.name + "-stdout")

    def detail(self) -> str:
        return f"Apache Kafka {self.settings.kafka_version} (KRaft)"
