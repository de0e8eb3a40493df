"""`persona stack status --json` describes the running stack for tools; `up` is idempotent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from personas.settings import Settings

PERSONA = str(Path(sys.executable).parent / "persona")


def test_status_json_names_every_service(stack_settings: Settings):
    out = subprocess.run(
        [PERSONA, "stack", "status", "--json", "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status = json.loads(out.stdout)
    assert {s["name"] for s in status["services"]} == {"postgres", "kafka", "mlflow", "prometheus"}
    assert all(s["answers"] and s["pid"] for s in status["services"])
    assert status["kafka_bootstrap"] == stack_settings.kafka_bootstrap
    assert status["mlflow_tracking_uri"] == stack_settings.tracking_uri
    assert status["prometheus_url"] == (
        f"http://{stack_settings.prometheus_host}:{stack_settings.prometheus_port}"
    )
    assert "persona@" in status["postgres_dsn"]
    assert ":" + stack_settings.pg_password.get_secret_value() + "@" not in status["postgres_dsn"]


def test_up_again_is_a_no_op(stack_settings: Settings):
    before = json.loads(
        subprocess.run(
            [PERSONA, "stack", "status", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )
    out = subprocess.run(
        [PERSONA, "stack", "up"], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.count("already running") == 4
    after = json.loads(
        subprocess.run(
            [PERSONA, "stack", "status", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )
    assert [s["pid"] for s in before["services"]] == [s["pid"] for s in after["services"]]


def test_cli_mistake_is_one_line_not_a_traceback():
    out = subprocess.run([PERSONA, "stack", "nonsense"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "nonsense" in out.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["stream", "--engine", "turbo"], {}, "engine: Input should be 'batch' or 'agent'"),
        (["stream"], {"PERSONA_STREAM_MAX_BATCH": "0"}, "max_batch: Input should be greater"),
        (["stream", "--log-level", "loud"], {}, "log_level: Input should be"),
    ],
)
def test_invalid_setting_is_one_line_naming_it(
    args: list[str], env: dict[str, str], expected: str
) -> None:
    import os

    out = subprocess.run(
        [PERSONA, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid StreamSettings: ")
    assert expected in lines[0]


def test_stack_processes_do_not_share_the_callers_session(stack_settings: Settings):
    """A Ctrl-C or a job runner's SIGINT to the caller must not reach the stack's processes."""
    import os

    from infra.stack import runner

    for service in runner.status(stack_settings):
        assert service.pid is not None
        assert os.getsid(service.pid) != os.getsid(0), f"{service.name} shares our session"
