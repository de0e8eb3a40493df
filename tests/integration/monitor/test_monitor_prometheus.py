"""A real Prometheus, with the shipped rules, scrapes a real monitor judging a drifting month and
sees the drift alert fire (docs/observability.md)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from monitor_helpers import MONTHS, ORIGIN, Running, month, publish, register_champion

from infra.stack.layout import Layout
from infra.stack.process import free_port, wait_until
from infra.stack.prometheus import PrometheusService, Scrape, find_binary
from monitor.settings import MonitorSettings
from personas import registry
from personas.model import CentroidModel
from personas.settings import Settings

pytestmark = pytest.mark.integration


def _api(prometheus: PrometheusService, path: str, **query: str) -> Any:
    url = f"{prometheus.address}/api/v1/{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)["data"]


def test_prometheus_scrapes_the_monitor_and_the_drift_alert_fires(
    isolated_settings: Settings, vendor_model: CentroidModel, tmp_path: Path
) -> None:
    assert find_binary() is not None, "Prometheus is not installed: `make up` installs it"
    metrics_port = free_port()
    settings = isolated_settings.model_copy(update={"prometheus_port": free_port()})
    prometheus = PrometheusService(
        settings,
        Layout(root=tmp_path / "stack", cache=settings.cache_dir),
        Scrape({"persona-monitor": [f"127.0.0.1:{metrics_port}"]}, interval_s=1, evaluation_s=1),
    )
    assert prometheus.start() == "started"
    monitor: Running | None = None
    try:
        january = month(np.random.default_rng(202501), vendor_model.centroids, 500, 2.0)
        version = register_champion(settings, vendor_model, january)
        publish(
            settings, registry.load_version(settings, version), MONTHS[:2]
        )  # Feb ok, Mar drifts
        ms = MonitorSettings(
            _env_file=None,  # type: ignore[call-arg]
            window="7d",
            window_origin=ORIGIN,
            allowed_lateness="1h",
            min_events=40,
            reports="never",
            group_id=f"monitor-prom-{settings.model_name}",
            instance_id="monitor-prom",
            metrics_port=metrics_port,
        )
        monitor = Running(settings, ms)

        def firing() -> list[dict[str, Any]]:
            alerts = _api(prometheus, "alerts")["alerts"]
            return [
                a
                for a in alerts
                if a["labels"]["alertname"] == "PersonaDriftDetected" and a["state"] == "firing"
            ]

        assert wait_until(lambda: bool(firing()), timeout=240, interval=1.0), (
            f"no drift alert; monitor stats {monitor.stats}, "
            f"targets {_api(prometheus, 'targets')['activeTargets']}"
        )
        (alert,) = firing()
        assert alert["labels"]["instance"] == f"127.0.0.1:{metrics_port}"
        drift_windows = _api(
            prometheus, "query", query='persona_monitor_windows_total{status="drift"}'
        )["result"]
        assert float(drift_windows[0]["value"][1]) >= 1
        up = _api(prometheus, "query", query='up{job="persona-monitor"}')["result"]
        assert up[0]["value"][1] == "1"
    finally:
        if monitor is not None:
            monitor.finish()
        prometheus.stop()
