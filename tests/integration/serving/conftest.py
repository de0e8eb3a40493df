"""Start `persona serve` as a real subprocess against the stack, and register models in MLflow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serve_process import Server

from infra.stack.process import free_port
from personas import registry
from personas.model import CentroidModel
from personas.settings import Settings


@pytest.fixture
def start_server(isolated_settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start `persona serve` with this test's model name and topics; stop it afterwards."""
    started: list[Server] = []

    def start(workers: int = 2, **serve_env: str) -> Server:
        s = isolated_settings
        port = free_port()
        env = {
            **os.environ,
            "PERSONA_MLFLOW_TRACKING_URI": s.tracking_uri,
            "PERSONA_KAFKA_HOST": s.kafka_host,
            "PERSONA_KAFKA_PORT": str(s.kafka_port),
            "PERSONA_MODEL_NAME": s.model_name,
            "PERSONA_CHAMPION_ALIAS": s.champion_alias,
            "PERSONA_TOPIC_MODEL_UPDATES": s.topics.model_updates,
            "PERSONA_SERVE_CACHE_DIR": str(tmp_path / "cache"),
            **{f"PERSONA_SERVE_{k.upper()}": v for k, v in serve_env.items()},
        }
        log = tmp_path / f"serve-{port}.log"
        persona = Path(sys.executable).parent / "persona"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(persona), "serve", "--port", str(port), "--workers", str(workers)],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Server(process, f"http://127.0.0.1:{port}", log)
        started.append(server)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"persona serve exited {process.returncode}:\n{server.output()}")
            try:
                # Answering is not enough: Gunicorn forks its workers one after the other, and a
                # test that counts them must see them all (a busy machine delays the second).
                if server.get("/health")[0] == 200 and len(server.worker_pids()) == workers:
                    return server
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(f"persona serve did not answer within 90 s:\n{server.output()}")

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(20)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(5)


@pytest.fixture
def register_model(isolated_settings: Settings) -> Callable[[CentroidModel], int]:
    """Log ``persona_model.json`` in a run and register it as a new version (the trainer's contract)."""
    settings = isolated_settings
    client = registry.client(settings)
    experiment = client.create_experiment(f"serve-test-{settings.model_name}")
    client.create_registered_model(settings.model_name)

    def register(model: CentroidModel) -> int:
        run = client.create_run(experiment)
        client.log_dict(run.info.run_id, model.to_dict(), registry.MODEL_ARTIFACT)
        client.set_terminated(run.info.run_id)
        version = client.create_model_version(
            settings.model_name, f"runs:/{run.info.run_id}", run.info.run_id
        )
        return int(version.version)

    return register


@pytest.fixture
def set_champion(isolated_settings: Settings) -> Callable[[int], None]:
    client = registry.client(isolated_settings)

    def move(version: int) -> None:
        client.set_registered_model_alias(
            isolated_settings.model_name, isolated_settings.champion_alias, str(version)
        )

    return move
