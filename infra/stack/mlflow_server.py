"""MLflow tracking server + model registry: backend store in PostgreSQL, artifacts on local disk.

Runs the `mlflow` executable of the project's own environment; the first start creates MLflow's
tables (its own migrations), which is most of the ~20 s it takes.
"""

from __future__ import annotations

import os
import shutil
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from infra.stack.detached import DetachedService
from infra.stack.layout import Layout
from personas.errors import StackError
from personas.settings import Settings

__all__ = ["MlflowAuth", "MlflowService"]

MARKER = "mlflow"
START_TIMEOUT = 180.0


@dataclass(frozen=True)
class MlflowAuth:
    """MLflow's basic-auth app: an admin bootstrapped at first start, users in a SQLite file.
    Secrets reach the server by environment only (MLFLOW_AUTH_ADMIN_PASSWORD, the Flask key)."""

    admin_username: str
    admin_password_file: Path
    flask_secret_key_file: Path
    database: Path
    default_permission: str = "READ"


class MlflowService(DetachedService):
    name = "mlflow"
    label = "MLflow"
    marker = MARKER
    start_timeout = START_TIMEOUT
    stop_timeout = 30.0
    port_settings = (("mlflow_host", "mlflow_port"),)

    def __init__(
        self,
        settings: Settings,
        layout: Layout,
        *,
        auth: MlflowAuth | None = None,
        port_variable: str = "PERSONA_MLFLOW_PORT",
    ) -> None:
        super().__init__(settings, layout)
        self.artifacts = layout.service_dir("mlflow") / "artifacts"
        self.auth = auth
        self.port_variable = port_variable

    def ports(self) -> list[tuple[str, int, str]]:
        return [(self.settings.mlflow_host, self.settings.mlflow_port, self.port_variable)]

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
        if self.auth is not None:
            argv += ["--app-name", "basic-auth"]
            env.update(self._auth_environment(self.auth))
        return argv, env, self.layout.log_file(self.name)

    def _auth_environment(self, auth: MlflowAuth) -> dict[str, str]:
        """The basic-auth configuration file (no secret in it) and the secrets, by environment."""
        auth.database.parent.mkdir(parents=True, exist_ok=True)
        ini = self.layout.service_dir(self.name) / "basic_auth.ini"
        ini.write_text(
            "[mlflow]\n"
            f"default_permission = {auth.default_permission}\n"
            f"database_uri = sqlite:///{auth.database}\n"
            f"admin_username = {auth.admin_username}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        return {
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_PASSWORD": auth.admin_password_file.read_text().strip(),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": auth.flask_secret_key_file.read_text().strip(),
        }

    def detail(self) -> str:
        auth = f"basic auth (users {self.auth.database}), " if self.auth is not None else ""
        return f"{auth}artifacts {self.artifacts}"
