"""Run the app under Gunicorn from Python (``gunicorn.app.base.BaseApplication``).

Each worker builds its own app in ``load()`` after the fork, so every worker has its own model
holder and poller thread (threads do not survive a fork). MLflow is imported once in the master
before forking, so N workers do not each pay its ~4 s import on 2 cores.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from personas.errors import ConfigError
from personas.settings import Settings
from serving.settings import ServeSettings

__all__ = ["PersonaServer", "check_port_free", "configure_mlflow_http", "serve"]


def configure_mlflow_http(serve: ServeSettings) -> None:
    """Bound MLflow's HTTP calls (its defaults retry for minutes) unless the user set them."""
    from personas.registry import bound_http_client

    bound_http_client(timeout_s=serve.registry_timeout_s, retries=serve.registry_retries)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in the log


def check_port_free(host: str, port: int) -> None:
    """A taken port is reported in one line (Gunicorn would retry and print five tracebacks)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror}; "
                "choose another with --port or PERSONA_SERVE_PORT"
            ) from None


def _child_exit(server: Any, worker: Any) -> None:
    from serving.metrics import mark_worker_dead

    mark_worker_dead(worker.pid)


def _worker_exit(server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    holder = getattr(app, "holder", None)
    if holder is not None:
        holder.stop(timeout=2.0)


class PersonaServer:
    """Factory for the Gunicorn application (the class is built lazily: gunicorn imports slowly)."""

    @staticmethod
    def build(settings: Settings, serve: ServeSettings) -> Any:
        from gunicorn.app.base import BaseApplication

        class _App(BaseApplication):  # type: ignore[misc]
            def __init__(self) -> None:
                self.options = {
                    "bind": serve.bind,
                    "workers": serve.workers,
                    "threads": serve.threads,
                    "timeout": serve.timeout_s,
                    "graceful_timeout": 10,
                    "preload_app": False,
                    "accesslog": "-" if serve.access_log else None,
                    "errorlog": "-",
                    "loglevel": "info",
                    "proc_name": "persona-serve",
                    "worker_exit": _worker_exit,
                    "child_exit": _child_exit,
                    # gunicorn ≥ 24 opens ~/.gunicorn/gunicorn.ctl: two servers would share it
                    "control_socket_disable": True,
                }
                super().__init__()

            def load_config(self) -> None:
                for key, value in self.options.items():
                    if value is not None and key in self.cfg.settings:
                        self.cfg.set(key, value)

            def load(self) -> Any:
                from serving.app import create_app

                return create_app(settings, serve)

        return _App()


def serve(settings: Settings, serve_settings: ServeSettings) -> None:
    """Blocking: run Gunicorn until SIGINT/SIGTERM."""
    check_port_free(serve_settings.host, serve_settings.port)
    configure_mlflow_http(serve_settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(message)s")
    # urllib3 warns on every retried poll while MLflow is down; the holder logs the transition once
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    import mlflow.tracking  # noqa: F401 - warm import in the master, shared by forked workers

    from serving.metrics import enable_multiprocess

    metrics_dir = Path(tempfile.mkdtemp(prefix="persona-serve-metrics-"))
    enable_multiprocess(metrics_dir)  # before the workers fork (serving/metrics.py)
    master = os.getpid()
    try:
        PersonaServer.build(settings, serve_settings).run()
    finally:
        # A worker leaves Gunicorn through SystemExit up this same stack: only the master may
        # remove the directory every worker writes to.
        if os.getpid() == master:
            shutil.rmtree(metrics_dir, ignore_errors=True)
