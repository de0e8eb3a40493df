"""What each service may do on a secured Kafka cluster: the one table of ACLs.

The cluster profile of the local stack creates exactly these ACLs, ``persona doctor`` checks the
configured user holds them, each service checks its own at start-up, and the README's table is
rendered from here (a test compares them). Operations follow Kafka's implication rules: READ and
WRITE imply DESCRIBE on a topic, READ implies DESCRIBE on a group; since Kafka 3.0 an idempotent
producer needs WRITE on a topic, not IdempotentWrite on the cluster (KIP-679).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from personas.settings import Settings

if TYPE_CHECKING:
    from confluent_kafka.admin import AclBinding  # type: ignore[attr-defined]

__all__ = [
    "GROUP_PREFIXES",
    "SERVICES",
    "Grant",
    "acl_bindings",
    "acl_table_markdown",
    "service_grants",
]

Resource = Literal["topic", "group"]
Pattern = Literal["literal", "prefixed"]
Operation = Literal["READ", "WRITE", "CREATE", "DESCRIBE_CONFIGS"]

#: Services that talk to Kafka, each with a SCRAM user of the same name on the cluster profile.
SERVICES = ("producer", "stream", "monitor", "trainer", "serve")

#: Consumer-group prefixes: every group a service uses starts with its prefix (the stream
#: workers' group and their model-update watchers, the monitor's and trainer's groups, the REST
#: service's per-process watchers). Tests check each service's defaults start with it.
GROUP_PREFIXES = {
    "stream": "persona-stream",
    "monitor": "persona-monitor",
    "trainer": "persona-trainer",
    "serve": "persona-serve",
}


@dataclass(frozen=True)
class Grant:
    """One ACL a service needs: ALLOW ``operation`` on ``resource`` ``name`` (``pattern``)."""

    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = "literal"
    why: str = ""
    #: Needed only in one mode (e.g. the Faust agent engine): a missing one is a note, not a
    #: failure, and services check it only in that mode.
    optional: bool = False


def service_grants(settings: Settings) -> dict[str, list[Grant]]:
    """The ACLs of each service for the topic names in ``settings``."""
    t = settings.topics
    group = GROUP_PREFIXES

    def groups(service: str) -> Grant:
        return Grant("group", group[service], "READ", "prefixed", "join and commit its groups")

    return {
        "producer": [
            Grant("topic", t.responses, "WRITE", why="publish and replay survey events"),
            Grant(
                "topic",
                t.responses,
                "DESCRIBE_CONFIGS",
                why="read the timestamp policy before a replay",
            ),
        ],
        "stream": [
            Grant("topic", t.responses, "READ", why="consume survey events"),
            Grant("topic", t.labels, "WRITE", why="emit persona labels"),
            Grant("topic", t.dlq, "WRITE", why="dead-letter invalid events"),
            Grant("topic", t.model_updates, "READ", why="follow the champion (hot swap)"),
            groups("stream"),
            # The Faust agent engine keeps a leader-election topic named after its app id.
            Grant(
                "topic",
                group["stream"],
                "CREATE",
                "prefixed",
                "`--engine agent` only: Faust's internal topics",
                optional=True,
            ),
            Grant("topic", group["stream"], "READ", "prefixed", "`--engine agent` only", True),
            Grant("topic", group["stream"], "WRITE", "prefixed", "`--engine agent` only", True),
        ],
        "monitor": [
            Grant("topic", t.labels, "READ", why="windows of persona labels"),
            Grant("topic", t.responses, "READ", why="windows of survey events"),
            Grant("topic", t.alerts, "WRITE", why="one drift report per window"),
            Grant("topic", t.retrain, "WRITE", why="retrain commands on drift"),
            Grant("topic", t.alerts, "READ", why="after a crash: which reports were sent"),
            Grant("topic", t.retrain, "READ", why="after a crash: which commands were sent"),
            groups("monitor"),
        ],
        "trainer": [
            Grant("topic", t.retrain, "READ", why="retrain commands"),
            Grant("topic", t.model_updates, "WRITE", why="announce a new champion"),
            Grant("topic", t.alerts, "WRITE", why="trainer alerts (held, failed)"),
            groups("trainer"),
        ],
        "serve": [
            Grant("topic", t.model_updates, "READ", why="follow the champion (hot swap)"),
            groups("serve"),
        ],
    }


def acl_bindings(settings: Settings) -> list[tuple[str, AclBinding]]:
    """(user, ALLOW binding) for every grant of every service, user ``User:<service>``."""
    from confluent_kafka.admin import (  # type: ignore[attr-defined]  # not in its __all__
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    out = []
    for service, grants in service_grants(settings).items():
        for grant in grants:
            binding = AclBinding(
                ResourceType[grant.resource.upper()],
                grant.name,
                ResourcePatternType[grant.pattern.upper()],
                f"User:{service}",
                "*",
                AclOperation[grant.operation],
                AclPermissionType.ALLOW,
            )
            out.append((service, binding))
    return out


def acl_table_markdown(settings: Settings) -> str:
    """The table the README shows (default topic names)."""
    lines = [
        "| user | resource | name | pattern | operation | why |",
        "|---|---|---|---|---|---|",
    ]
    for service, grants in service_grants(settings).items():
        for g in grants:
            lines.append(
                f"| `{service}` | {g.resource} | `{g.name}` | {g.pattern} | {g.operation} | {g.why} |"
            )
    return "\n".join(lines)
