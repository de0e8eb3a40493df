"""The trainer's metrics, recorded once per command from its Outcome."""

from __future__ import annotations

import uuid

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from trainer.metrics import TrainerMetrics
from trainer.retrain import Outcome


def _value(metrics: TrainerMetrics, name: str, **labels: str) -> float:
    text = generate_latest(metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"no sample {name}{labels}")


def test_outcomes_gate_results_fit_seconds_and_champion() -> None:
    metrics = TrainerMetrics()
    cid = uuid.uuid4()
    metrics.handled(Outcome("promoted", cid, "ok", 3, 3, "r", {"fit_seconds": 0.4}), 2.0)
    metrics.handled(Outcome("gate_failed", cid, "no", 3, None, "r", {"fit_seconds": 0.3}), 1.0)
    metrics.handled(Outcome("duplicate", cid, "seen", 3), 0.01)
    metrics.invalid_command()
    assert _value(metrics, "persona_trainer_commands_total", outcome="promoted") == 1
    assert _value(metrics, "persona_trainer_commands_total", outcome="gate_failed") == 1
    assert _value(metrics, "persona_trainer_commands_total", outcome="invalid_command") == 1
    assert _value(metrics, "persona_trainer_commands_total", outcome="stale") == 0
    assert _value(metrics, "persona_trainer_gate_total", result="passed") == 1
    assert _value(metrics, "persona_trainer_gate_total", result="failed") == 1
    assert _value(metrics, "persona_trainer_fit_seconds_count") == 2
    assert _value(metrics, "persona_trainer_command_seconds_count") == 3
    assert _value(metrics, "persona_trainer_champion_version") == 3
