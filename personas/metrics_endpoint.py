"""``/metrics`` for a service that has no web server of its own (the monitor, the trainer).

The stream worker serves its metrics through Faust's web server and the REST service through its
own WSGI app; the monitor and the trainer are plain consumer loops, so they get prometheus_client's
small threaded WSGI server on a port of their own (``PERSONA_MONITOR_METRICS_PORT``,
``PERSONA_TRAINER_METRICS_PORT``; 0 turns it off). A port that is taken is a ConfigError naming
the setting, not a traceback from deep inside ``wsgiref``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from personas.errors import ConfigError

__all__ = ["MetricsEndpoint", "serve_metrics"]

log = logging.getLogger(__name__)


@dataclass
class MetricsEndpoint:
    """A running ``/metrics`` server; ``close`` stops it (idempotent)."""

    host: str
    port: int
    _server: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)


def serve_metrics(registry: Any, host: str, port: int, *, setting: str) -> MetricsEndpoint | None:
    """Serve ``registry`` at ``http://host:port/metrics`` on a daemon thread; None if ``port`` is
    0 (off). ``setting`` names the environment variable to change when the port is taken."""
    if port == 0:
        return None
    from prometheus_client import start_http_server

    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; "
            f"choose another port with {setting} (0 turns metrics off)"
        ) from None
    endpoint = MetricsEndpoint(host, int(server.server_port), server, thread)
    log.info("metrics at %s", endpoint.url)
    return endpoint
