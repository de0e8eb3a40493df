"""Tools of the whole-loop tests: run a `persona` command, count the labelled rows, read a topic
to its end. Shared by the cluster loop, the broker-restart tests and the soak."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from infra.demo.services import persona_argv
from personas import db
from personas.kafka import read_to_end
from personas.settings import Settings

__all__ = ["label_rows", "run_persona", "topic_messages"]

#: (rows, distinct event ids) in persona_labels — the same question the soak and the demo ask.
label_rows = db.label_counts


def run_persona(*args: str, env: dict[str, str], timeout: float = 180) -> str:
    """Run `persona …` to completion; its stdout, or a failure showing both outputs."""
    result = subprocess.run(
        persona_argv(*args), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"persona {args[:2]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def topic_messages(settings: Settings, topic: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Every message of ``topic`` up to its end offsets now, as JSON."""
    return [json.loads(m.value()) for m in read_to_end(settings, topic, timeout)]
