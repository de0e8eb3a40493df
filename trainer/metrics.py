"""The trainer's Prometheus metrics, in a registry of its own (served by personas.metrics_endpoint).

Recorded by the consumer loop (trainer/service.py) once per command, from the command's
``Outcome``: the jobs themselves stay free of metrics. ``persona_trainer_champion_version`` is the
version the trainer last saw as champion after a command (0 before the first): a change is the
"champion changed" alarm's signal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from trainer.retrain import Outcome

__all__ = ["OUTCOMES", "TrainerMetrics"]

#: Every outcome a command can have (trainer.retrain.Status), and an unreadable message.
OUTCOMES = (
    "promoted",
    "gate_failed",
    "candidate_persona",
    "duplicate",
    "stale",
    "failed",
    "invalid_command",
)

SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class TrainerMetrics:
    """Every metric of one trainer; ``registry`` is what ``/metrics`` serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.commands = Counter(
            "persona_trainer_commands",
            "Retrain commands handled, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.command_seconds = Histogram(
            "persona_trainer_command_seconds",
            "Seconds from reading a command to its durable decision (data, fit, MLflow, alias).",
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.fit_seconds = Histogram(
            "persona_trainer_fit_seconds",
            "Seconds of the KMeans fit of a retrain.",
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.gate = Counter(
            "persona_trainer_gate",
            "Quality-gate results of retrains that reached the gate.",
            ["result"],
            registry=self.registry,
        )
        self.retries = Counter(
            "persona_trainer_retries",
            "Commands put back because PostgreSQL, MLflow or Kafka did not answer.",
            registry=self.registry,
        )
        self.champion_version = Gauge(
            "persona_trainer_champion_version",
            "Champion version after the last command (0: none seen yet).",
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.commands.labels(outcome=outcome)
        for result in ("passed", "failed"):
            self.gate.labels(result=result)

    def handled(self, outcome: Outcome, seconds: float) -> None:
        """One command decided (``seconds`` of handling)."""
        self.commands.labels(outcome=outcome.status).inc()
        self.command_seconds.observe(seconds)
        fit = outcome.details.get("fit_seconds")
        if isinstance(fit, int | float):
            self.fit_seconds.observe(float(fit))
        if outcome.status in ("promoted", "candidate_persona"):  # a held candidate passed it too
            self.gate.labels(result="passed").inc()
        elif outcome.status == "gate_failed":
            self.gate.labels(result="failed").inc()
        if outcome.champion_version is not None:
            self.champion_version.set(outcome.champion_version)

    def invalid_command(self) -> None:
        self.commands.labels(outcome="invalid_command").inc()
