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

from infra.stack.detached import DetachedService
from infra.stack.layout import Layout
from personas.errors import StackError
from personas.settings import Settings

__all__ = ["MlflowService"]

MARKER = "mlflow"
START_TIMEOUT = 180.0


class MlflowService(DetachedService):
    name = "mlflow"
    label = "MLflow"
    marker = MARKER
    start_timeout = START_TIMEOUT
    stop_timeout = 30.0
    port_settings = (("mlflow_host", "mlflow_port"),)

    def __init__(self, settings: Settings, layout: Layout) -> None:
        super().__init__(settings, layout)
        self.artifacts = layout.service_dir("mlflow") / "artifacts"

    @property
    def address(self) -> str:
        return f"http://{self.settings.mlflow_host}:{self.settings.mlflow_port}"

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

    def prepare(self) -> tuple[list[str], dict[str, str], Path]:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        argv = [
            self._executable(),
            "server",
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
        # The backend URI holds PostgreSQL's password: by environment (`mlflow server` reads
        # MLFLOW_BACKEND_STORE_URI), never on the command line, which `ps` shows to every user.
        env = dict(
            os.environ,
            MLFLOW_ENABLE_WORKSPACES="false",
            MLFLOW_BACKEND_STORE_URI=self.settings.mlflow_backend_uri(),
        )
        return argv, env, self.layout.log_file(self.name)

    def detail(self) -> str:
        return f"artifacts {self.artifacts}"
