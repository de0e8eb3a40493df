"""MLflow tracking server + model registry: backend store in PostgreSQL, artifacts on local disk.

Runs the `mlflow` executable of the project's own environment; the first start creates MLflow's
tables (its own migrations), which is most of the ~20 s it takes.
"""

from __future__ import annotations

import os
import shutil
import sys
import urllib.request
from pathlib import Path

from infra.stack.layout import Layout, ServiceStatus
from infra.stack.process import log_tail, owned_pid, port_open, start_detached, stop_pid, wait_until
from personas.errors import StackError
from personas.settings import Settings

__all__ = ["MlflowService"]

MARKER = "mlflow"
START_TIMEOUT = 180.0


class MlflowService:
    name = "mlflow"

    def __init__(self, settings: Settings, layout: Layout) -> None:
        self.settings = settings
        self.layout = layout
        self.artifacts = layout.service_dir("mlflow") / "artifacts"

    @property
    def address(self) -> str:
        return f"http://{self.settings.mlflow_host}:{self.settings.mlflow_port}"

    def pid(self) -> int | None:
        return owned_pid(self.layout.pid_file(self.name), MARKER)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.address + "/health", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def _executable(self) -> str:
        local = Path(sys.executable).parent / "mlflow"
        if local.exists():
            return str(local)
        found = shutil.which("mlflow")
        if found is None:
            raise StackError(
                "the `mlflow` command is not installed in this environment (make install)"
            )
        return found

    def start(self) -> str:
        if self.pid() is not None:
            if wait_until(self.answers, START_TIMEOUT):
                return "already running"
            raise StackError(
                f"MLflow is running but does not answer at {self.address}; see {self.layout.log_file(self.name)}"
            )
        if port_open(self.settings.mlflow_host, self.settings.mlflow_port):
            raise StackError(
                f"port {self.settings.mlflow_port} on {self.settings.mlflow_host} is taken by a "
                "process that is not this stack's MLflow; stop it or set PERSONA_MLFLOW_PORT"
            )
        self.artifacts.mkdir(parents=True, exist_ok=True)
        argv = [
            self._executable(),
            "server",
            "--backend-store-uri",
            self.settings.mlflow_backend_uri(),
            "--artifacts-destination",
            self.artifacts.as_uri(),
            "--serve-artifacts",
            "--host",
            self.settings.mlflow_host,
            "--port",
            str(self.settings.mlflow_port),
            "--workers",
            "2",
        ]
        env = dict(os.environ, MLFLOW_ENABLE_WORKSPACES="false")
        log = self.layout.log_file(self.name)
        pid = start_detached(argv, log, self.layout.pid_file(self.name), env)
        if (
            not wait_until(lambda: self.answers() or self.pid() is None, START_TIMEOUT, 1.0)
            or self.pid() is None
        ):
            self.stop()
            raise StackError(
                f"MLflow did not start within {START_TIMEOUT:.0f} s (pid {pid}); see {log}:\n"
                + log_tail(log)
            )
        return "started"

    def stop(self) -> str:
        pid = self.pid()
        if pid is None:
            return "not running"
        stop_pid(pid, "MLflow", timeout=30)
        self.layout.pid_file(self.name).unlink(missing_ok=True)
        return "stopped"

    def status(self) -> ServiceStatus:
        pid = self.pid()
        return ServiceStatus(
            self.name,
            self.address,
            pid,
            pid is not None and self.answers(),
            f"artifacts {self.artifacts}",
        )
