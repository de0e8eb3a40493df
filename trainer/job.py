"""The context one trainer job works in: bootstrap, a retrain command or an accepted candidate.

Every job needs the same handful of things — the connection settings, the trainer's settings, a
Kafka publisher, the id of the command it decides (none for bootstrap) and a clock for the events
it emits — and every job must hold the per-model training lock while it registers and moves the
alias. ``open_job`` is the one place that takes the lock and owns the publisher; the job functions
receive a ``Job`` instead of passing nine arguments down every call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from personas.schemas import TrainerAlert, utc_now
from personas.settings import Settings
from trainer import ledger
from trainer.settings import TrainerSettings

if TYPE_CHECKING:
    from trainer.events import Publisher

__all__ = ["AlertKind", "Job", "open_job"]

AlertKind = Literal["candidate_persona", "gate_failed", "retrain_failed"]


@dataclass(frozen=True)
class Job:
    """What one job works with. Plain data: building one takes no lock and opens nothing."""

    settings: Settings
    ts: TrainerSettings
    publisher: Publisher
    command_id: UUID | None = None  # the command this job decides; None: bootstrap (no ledger row)
    clock: Callable[[], datetime] = field(default=utc_now)

    @property
    def model_name(self) -> str:
        return self.settings.model_name

    def alert(self, kind: AlertKind, message: str, details: dict[str, Any] | None = None) -> None:
        """Publish a TrainerAlert about this job's command on ``drift-alerts`` (keyed by it, so
        the alerts of one command stay in order)."""
        key = f"trainer:{self.command_id}" if self.command_id else "trainer:invalid-command"
        event = TrainerAlert(
            kind=kind,
            command_id=self.command_id,
            message=message,
            details={"model_name": self.model_name, **(details or {})},
            created_at=self.clock(),
        )
        self.publisher.publish(self.settings.topics.alerts, key, event)


@contextmanager
def open_job(
    settings: Settings,
    trainer_settings: TrainerSettings | None = None,
    *,
    publisher: Publisher | None = None,
    command_id: UUID | None = None,
) -> Iterator[Job]:
    """A Job holding the model's training lock (two jobs never race for the alias), with the
    caller's publisher or one of its own that is closed afterwards."""
    from trainer.events import Publisher

    own = publisher is None
    pub = publisher or Publisher(settings)
    try:
        with ledger.training_lock(settings):
            yield Job(settings, trainer_settings or TrainerSettings(), pub, command_id)
    finally:
        if own:
            pub.close()
