"""Prometheus for the local stack: scrapes every Persona Stream service and evaluates the rules
shipped in ``infra/prometheus/rules.yml`` (docs/observability.md).

Debian's ``prometheus`` package provides the binary (and ``promtool``); the stack installs it the
way it installs PostgreSQL, as root, under a lock. The stack's instance writes its own
configuration (``scrape_config``) into its folder: the default ports of every service — the
stream workers' Faust web servers (``PERSONA_STREAM_WEB_PORT`` 6066, and the three after it for
more workers), the monitor (6070), the trainer (6071) and the REST service (9999). A target that
is not running is simply ``up == 0``; the "service down" alert fires only for one that was up.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

from infra.stack.detached import DetachedService
from infra.stack.layout import SKIPPED, Layout, ServiceStatus
from infra.stack.process import apt_install, file_lock
from personas.errors import StackError
from personas.settings import Settings

__all__ = [
    "RULES",
    "PrometheusService",
    "Scrape",
    "default_targets",
    "find_binary",
    "scrape_config",
]

MARKER = "prometheus"
RULES = Path(__file__).resolve().parents[1] / "prometheus" / "rules.yml"


@dataclass(frozen=True)
class Scrape:
    """What one Prometheus scrapes, and how often."""

    targets: dict[str, list[str]]  # job → host:port list
    interval_s: float = 15.0
    evaluation_s: float = 15.0
    rules: list[Path] = field(default_factory=lambda: [RULES])


def default_targets(host: str = "127.0.0.1") -> dict[str, list[str]]:
    """Every service at its default /metrics port (docs/observability.md lists them)."""
    return {
        "persona-stream": [f"{host}:{port}" for port in range(6066, 6070)],
        "persona-monitor": [f"{host}:6070"],
        "persona-trainer": [f"{host}:6071"],
        "persona-serve": [f"{host}:9999"],
    }


#: docker-compose.yml's services and their /metrics ports (infra/compose/prometheus.yml).
COMPOSE_TARGETS = {
    "persona-stream": ["stream:6066"],
    "persona-monitor": ["monitor:6070"],
    "persona-trainer": ["trainer:6071"],
    "persona-serve": ["serve:9999"],
}
STACK_HEADER = "# Written by the stack (infra/stack/prometheus.py); rewritten at every start."
COMPOSE_HEADER = (
    "# docker compose's Prometheus: infra.stack.prometheus.compose_config(), the local stack's\n"
    "# scrape_config() over the service names (tests/unit/infra/test_compose.py compares)."
)


def compose_config() -> str:
    """infra/compose/prometheus.yml, regenerated: ``python -c 'from infra.stack.prometheus
    import compose_config; print(compose_config(), end="")' > infra/compose/prometheus.yml``."""
    scrape = Scrape(COMPOSE_TARGETS, rules=[Path("/etc/prometheus/rules.yml")])
    return scrape_config(scrape, header=COMPOSE_HEADER)


def scrape_config(scrape: Scrape, *, header: str = STACK_HEADER) -> str:
    """prometheus.yml for ``scrape`` (YAML written by hand: a handful of lines, no dependency)."""
    lines = [
        header,
        "global:",
        f"  scrape_interval: {scrape.interval_s:g}s",
        f"  scrape_timeout: {min(10.0, scrape.interval_s):g}s",
        f"  evaluation_interval: {scrape.evaluation_s:g}s",
        "rule_files:",
        *[f"  - {path}" for path in scrape.rules],
        "scrape_configs:",
    ]
    for job, targets in scrape.targets.items():
        lines += [
            f"  - job_name: {job}",
            "    metrics_path: /metrics",
            "    static_configs:",
            f"      - targets: [{', '.join(repr(t) for t in targets)}]",
        ]
    return "\n".join(lines) + "\n"


def find_binary(name: str = "prometheus") -> str | None:
    return shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)


def install_prometheus(layout: Layout) -> str:
    """Debian's prometheus package (the server and promtool), installed once under a lock."""
    with file_lock(layout.cache / "prometheus-install.lock"):
        found = find_binary()
        if found is not None:
            return found
        if os.geteuid() != 0:
            raise StackError(
                "Prometheus is not installed; install it with `sudo apt-get install -y "
                "prometheus` (or run `make up` as root)"
            )
        apt_install("prometheus")
        found = find_binary()
        if found is None:
            raise StackError("prometheus was installed but its binary was not found")
        return found


class PrometheusService(DetachedService):
    name = "prometheus"
    label = "Prometheus"
    marker = MARKER
    start_timeout = 60.0
    stop_timeout = 20.0
    port_settings = (("prometheus_host", "prometheus_port"),)

    def __init__(self, settings: Settings, layout: Layout, scrape: Scrape | None = None) -> None:
        super().__init__(settings, layout)
        self.scrape = scrape or Scrape(default_targets())
        self.home = layout.service_dir(self.name)

    @property
    def address(self) -> str:
        return f"http://{self.settings.prometheus_host}:{self.settings.prometheus_port}"

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.address + "/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def start(self) -> str:
        """Optional: without the binary and without root to install it, the rest of the stack
        still comes up, and the line says how to get it."""
        if find_binary() is None and os.geteuid() != 0:
            return (
                f"{SKIPPED}: not installed (`sudo apt-get install -y prometheus` for metrics, "
                "rules and alerts; docs/observability.md)"
            )
        return super().start()

    def prepare(self) -> tuple[list[str], dict[str, str], Path]:
        binary = find_binary() or install_prometheus(self.layout)
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "prometheus.yml"
        config.write_text(scrape_config(self.scrape))
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.home / 'data'}",
            "--storage.tsdb.retention.time=15d",
            f"--web.listen-address={self.settings.prometheus_host}:{self.settings.prometheus_port}",
        ]
        return argv, dict(os.environ), self.layout.log_file(self.name)

    def status(self) -> ServiceStatus:
        found = super().status()
        if find_binary() is None:
            return replace(
                found, detail="not installed (optional: docs/observability.md)", required=False
            )
        return found

    def detail(self) -> str:
        jobs = ", ".join(self.scrape.targets)
        return f"scrapes {jobs}; rules {self.scrape.rules[0]}"
