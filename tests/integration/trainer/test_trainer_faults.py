"""Faults around a real `persona trainer` process: killed mid-retrain, MLflow or PostgreSQL gone.

Each test drives the service as it runs in production — a subprocess reading its own
``retrain-commands`` topic — and cuts a dependency for that process only (a TcpProxy in front of
it) or kills it with SIGKILL. What must hold every time: the command is not lost (its offset is
not committed until it is decided), it is never recorded as ``failed`` because something was down,
it ends in exactly one final ledger status, and it registers at most one model version.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fault_tools import TcpProxy, wait_for
from trainer_helpers import FEB, blobs, command, insert_labels, read_all

from infra.demo.services import ChildService, persona_argv
from personas import db, registry
from personas.catalogue import Catalogue
from personas.model import CentroidModel
from personas.schemas import RetrainCommand
from personas.settings import Settings, settings_env
from trainer import register
from trainer.bootstrap import bootstrap
from trainer.events import Publisher
from trainer.settings import TrainerSettings

WEEK = timedelta(days=7)
#: Final ledger statuses (anything but ``received``).
FINAL = ("promoted", "gate_failed", "candidate_persona", "duplicate", "stale", "failed")


class CutOnRequest(TcpProxy):
    """A TcpProxy in front of MLflow that goes down by itself at one exact step of the trainer's
    conversation: at the first HTTP request containing ``at`` — counted only once a request
    containing ``after`` went through, when given. A cut timed from outside the process could
    only ever land *somewhere*; this one lands where a bug would be (e.g. right after a version
    was created, before its persona_model.json is written)."""

    METHODS = (b"GET ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ")

    def __init__(self, upstream: tuple[str, int], *, at: bytes, after: bytes | None = None) -> None:
        super().__init__(upstream)
        self._at, self._after = at, after
        self._armed = after is None
        self._guard = threading.Lock()
        self.cut = threading.Event()

    def forwards(self, data: bytes) -> bool:
        """False for the request to cut at (once, ever)."""
        if not data.startswith(self.METHODS):
            return True  # a request body, not a request
        with self._guard:
            if self.cut.is_set():
                return True
            if not self._armed:
                self._armed = self._after is not None and self._after in data
                return True
            if self._at in data:
                self.cut.set()
                return False
        return True


@dataclass
class Case:
    """One test's world: isolated settings, the trainer's settings and a way to start trainers."""

    s: Settings
    ts: TrainerSettings
    tmp: Path
    started: list[ChildService] = field(default_factory=list)

    def start(self, **env: str) -> ChildService:
        """Start `persona trainer` with this case's settings; ``env`` overrides (e.g. a proxy port)."""
        child = settings_env(self.s)
        child.update(
            {
                "PERSONA_TRAINER_GROUP_ID": self.ts.group_id,
                "PERSONA_TRAINER_EXPERIMENT": self.ts.experiment,
                "PERSONA_TRAINER_REFERENCE_ROWS": str(self.ts.reference_rows),
                "PERSONA_TRAINER_SILHOUETTE_ROWS": str(self.ts.silhouette_rows),
                "PERSONA_TRAINER_MIN_SAMPLES": str(self.ts.min_samples),
                "PERSONA_TRAINER_RETRY_SECONDS": str(self.ts.retry_seconds),
                "PERSONA_TRAINER_SESSION_TIMEOUT_MS": str(self.ts.session_timeout_ms),
            }
        )
        child.update(env)
        log_path = self.tmp / f"trainer-{len(self.started)}.log"
        trainer = ChildService(
            "trainer", persona_argv("trainer", "--log-level", "INFO"), log_path, child
        ).start()
        self.started.append(trainer)
        return trainer

    def publish(self, cmd: RetrainCommand) -> None:
        with Publisher(self.s) as pub:
            pub.publish(self.s.topics.retrain, None, cmd)

    # What the test reads directly (never through a proxy).

    def ledger(self, cmd: RetrainCommand) -> list[tuple[str, int | None]]:
        with db.connect(self.s, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT status, version FROM trainer_commands WHERE command_id = %s",
                (cmd.command_id,),
            ).fetchall()
        return [(str(r[0]), r[1]) for r in rows]

    def status(self, cmd: RetrainCommand) -> str | None:
        rows = self.ledger(cmd)
        return rows[0][0] if rows else None

    def versions(self, cmd: RetrainCommand) -> list[int]:
        return register.versions_with_tags(self.s, {"command_id": str(cmd.command_id)})

    def runs(self, cmd: RetrainCommand) -> int:
        mlflow_client = registry.client(self.s)
        experiment = mlflow_client.get_experiment_by_name(self.ts.experiment)
        if experiment is None:
            return 0
        found = mlflow_client.search_runs(
            [experiment.experiment_id], f"tags.command_id = '{cmd.command_id}'"
        )
        return len(found)

    def committed(self) -> int:
        """The trainer group's committed offset on partition 0 (negative: nothing committed)."""
        from confluent_kafka import Consumer, TopicPartition

        from personas.kafka import consumer_config

        consumer = Consumer(consumer_config(self.s, self.ts.group_id))
        try:
            found = consumer.committed([TopicPartition(self.s.topics.retrain, 0)], timeout=10)
        finally:
            consumer.close()
        return int(found[0].offset)

    def alerts(self) -> list[dict[str, Any]]:
        return [value for _, value in read_all(self.s, self.s.topics.alerts)]

    def assert_done_once(self, cmd: RetrainCommand, trainer: ChildService) -> None:
        """The command ended promoted, once, with one version that serves, and was committed."""
        wait_for(lambda: self.status(cmd) in FINAL, 120, f"a final status\n{trainer.output()}")
        assert self.ledger(cmd) == [("promoted", 2)], trainer.output()
        assert self.versions(cmd) == [2]
        assert registry.champion_version(self.s) == 2
        champion = registry.load_champion(self.s)  # persona_model.json is there and valid
        assert champion is not None and champion.version == 2
        assert champion.metadata["command_id"] == str(cmd.command_id)
        wait_for(lambda: self.committed() == 1, 60, "the offset commit")
        assert [a["kind"] for a in self.alerts()] == []


@pytest.fixture
def case(
    isolated_settings: Settings,
    trainer_settings: TrainerSettings,
    catalogue: Catalogue,
    vendor_model: CentroidModel,
    unique: str,
    tmp_path: Path,
) -> Iterator[Case]:
    """Version 1 bootstrapped and a drifted week of labels that a retrain promotes as version 2."""
    ts = trainer_settings.model_copy(
        update={
            "group_id": f"trainer-faults-{unique}",
            "experiment": f"trainer-faults-{unique}",
            "retry_seconds": 0.5,
            # A killed trainer's group membership lapses after this; the restarted one waits it.
            "session_timeout_ms": 6000,
        }
    )
    bootstrap(isolated_settings, trainer_settings=ts)
    shift = np.zeros((3, 10))
    shift[0, :2] = 1.5
    shift[2, 5:9] = -1.0
    x, _ = blobs(catalogue.centroids + shift, 100, 2.0, seed=61)
    insert_labels(isolated_settings, vendor_model, x, FEB, WEEK)
    found = Case(isolated_settings, ts, tmp_path)
    yield found
    for trainer in found.started:
        trainer.kill()


def _mlflow(s: Settings) -> tuple[str, int]:
    return (s.mlflow_host, s.mlflow_port)


def _retries(trainer: ChildService) -> int:
    """How often the trainer put a command back because a dependency did not answer."""
    return trainer.output().count("; will retry")


@pytest.mark.parametrize("when", ["mid_retrain", "after_registering"])
def test_killed_trainer_the_command_is_done_again_once(case: Case, when: str) -> None:
    """SIGKILL while the command is in hand; a new trainer handles it again and decides it once.

    ``mid_retrain``: the ledger took the command and its MLflow run exists (the fit is done, its
    run is being logged), no version yet. ``after_registering``: version 2 exists and the ledger
    does not know — MLflow was cut right after the version was created, so the trainer sits in
    its retry loop at exactly that point until it is killed.
    """
    cmd = command(FEB, FEB + WEEK, f"killed {when}")
    if when == "mid_retrain":
        trainer = case.start()
        case.publish(cmd)
        wait_for(
            lambda: case.status(cmd) == "received" and case.runs(cmd) > 0,
            120,
            f"the retrain to be under way\n{trainer.output()}",
            interval=0.05,
        )
        trainer.kill()
        assert case.versions(cmd) == [], "killed too late: a version was registered already"
    else:
        proxy = CutOnRequest(_mlflow(case.s), after=b"/model-versions/create", at=b" /api/")
        proxy.up()
        try:
            trainer = case.start(PERSONA_MLFLOW_TRACKING_URI=f"http://127.0.0.1:{proxy.port}")
            case.publish(cmd)
            wait_for(proxy.cut.is_set, 120, f"the cut after registering\n{trainer.output()}")
            wait_for(
                lambda: _retries(trainer) >= 1 or not trainer.alive(),
                120,
                f"a retry\n{trainer.output()}",
            )
            assert trainer.alive(), trainer.output()
            trainer.kill()
        finally:
            proxy.down()
        assert case.versions(cmd) == [2]
    assert case.ledger(cmd) == [("received", None)]
    assert case.committed() < 0  # not committed: Kafka delivers it again

    again = case.start()
    case.assert_done_once(cmd, again)
    updates = [
        (u["version"], u["previous_version"])
        for _, u in read_all(case.s, case.s.topics.model_updates)
    ]
    assert updates[:2] == [(1, None), (2, 1)] and set(updates[2:]) <= {(2, 1)}


@pytest.mark.parametrize("when", ["before", "champion_download", "after_registering"])
def test_mlflow_outage_is_retried_never_failed(case: Case, when: str) -> None:
    """MLflow goes away for this trainer: before the command arrives, while the trainer downloads
    the champion's persona_model.json, or right after it created version 2."""
    if when == "before":
        proxy: TcpProxy = TcpProxy(_mlflow(case.s))
    elif when == "champion_download":
        proxy = CutOnRequest(_mlflow(case.s), at=b"/mlflow-artifacts/")
    else:
        proxy = CutOnRequest(_mlflow(case.s), after=b"/model-versions/create", at=b" /api/")
    proxy.up()
    try:
        trainer = case.start(PERSONA_MLFLOW_TRACKING_URI=f"http://127.0.0.1:{proxy.port}")
        cmd = command(FEB, FEB + WEEK, f"mlflow down {when}")
        if when == "before":
            proxy.down()
        case.publish(cmd)
        if isinstance(proxy, CutOnRequest):
            wait_for(proxy.cut.is_set, 120, f"the cut ({when})\n{trainer.output()}")
        wait_for(
            lambda: _retries(trainer) >= 2 or case.status(cmd) in FINAL or not trainer.alive(),
            120,
            f"retries\n{trainer.output()}",
        )
        assert trainer.alive(), trainer.output()
        assert case.status(cmd) == "received", trainer.output()
        assert case.committed() < 0
        assert case.alerts() == []

        proxy.up()
        case.assert_done_once(cmd, trainer)
    finally:
        proxy.down()


@pytest.mark.parametrize("when", ["before", "during"])
def test_postgres_outage_is_retried_never_failed(case: Case, when: str) -> None:
    """PostgreSQL goes away for this trainer: before the command arrives (nothing is in the
    ledger yet), or mid-retrain after the rows were read — the trainer registers and promotes
    version 2, fails to record it, and the retried command finishes that version."""
    proxy = TcpProxy((case.s.pg_host, case.s.pg_port))
    proxy.up()
    try:
        trainer = case.start(PERSONA_PG_HOST="127.0.0.1", PERSONA_PG_PORT=str(proxy.port))
        wait_for(lambda: "trainer listening" in trainer.output(), 120, "the trainer to listen")
        cmd = command(FEB, FEB + WEEK, f"postgres down {when}")
        if when == "before":
            proxy.down()
            case.publish(cmd)
        else:
            case.publish(cmd)
            wait_for(
                lambda: case.status(cmd) == "received" and case.runs(cmd) > 0,
                120,
                f"the retrain to be under way\n{trainer.output()}",
                interval=0.05,
            )
            proxy.down()
        wait_for(
            lambda: _retries(trainer) >= 2 or case.status(cmd) in FINAL or not trainer.alive(),
            120,
            f"retries\n{trainer.output()}",
        )
        assert trainer.alive(), trainer.output()
        assert case.status(cmd) in (None, "received"), trainer.output()
        assert case.committed() < 0
        assert case.alerts() == []

        proxy.up()
        case.assert_done_once(cmd, trainer)
    finally:
        proxy.down()
