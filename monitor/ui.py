"""`persona ui`: Evidently's own UI (``evidently ui``) on the monitor's workspace.

The monitor records every window in the workspace (monitor/workspace.py); this only checks what a
person would otherwise learn from a traceback — the workspace is missing or empty, the port is
taken — and then becomes ``evidently ui`` (exec: Ctrl-C and signals reach it directly).
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from personas.errors import ConfigError

__all__ = ["check_port", "check_workspace", "exec_ui", "ui_argv", "ui_url"]


def check_workspace(path: Path) -> None:
    """A folder with at least one project in it, or a ConfigError that says how to make one."""
    projects = (
        [p for p in path.iterdir() if (p / "metadata.json").is_file()] if path.is_dir() else []
    )
    if not projects:
        raise ConfigError(
            f"no Evidently workspace with a project at {path}: run the monitor with "
            f"PERSONA_MONITOR_EVIDENTLY_WORKSPACE={path} (or `make demo`) first"
        )


def check_port(host: str, port: int) -> None:
    """Bind the port once, as the UI will: taken → a ConfigError naming the setting to change."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            why = (
                "is taken" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
            )
            raise ConfigError(
                f"port {port} on {host} {why}: choose another with --port or "
                "PERSONA_MONITOR_UI_PORT"
            ) from None


def ui_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{shown}:{port}"


def ui_argv(workspace: Path, host: str, port: int) -> list[str]:
    """The ``evidently ui`` command of this environment (works without an activated venv)."""
    local = Path(sys.executable).parent / "evidently"
    binary = str(local) if local.exists() else shutil.which("evidently")
    if binary is None:
        raise ConfigError("the `evidently` command is not installed here (make install)")
    return [binary, "ui", "--workspace", str(workspace), "--host", host, "--port", str(port)]


def exec_ui(workspace: Path, host: str, port: int, say: Callable[[str], None]) -> None:
    """Check, say where, then replace this process with ``evidently ui`` (no telemetry:
    DO_NOT_TRACK, unless the environment says otherwise)."""
    check_workspace(workspace)
    check_port(host, port)
    argv = ui_argv(workspace, host, port)
    say(f"Evidently UI on {workspace}: {ui_url(host, port)} (Ctrl-C to stop)")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    sys.stdout.flush()
    os.execv(argv[0], argv)
