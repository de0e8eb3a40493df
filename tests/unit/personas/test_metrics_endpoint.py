"""personas.metrics_endpoint: /metrics for the consumer-loop services."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from personas.errors import ConfigError
from personas.metrics_endpoint import serve_metrics


def test_serves_the_registry_and_stops() -> None:
    registry = CollectorRegistry()
    Counter("persona_test_things", "Things.", registry=registry).inc(3)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = serve_metrics(registry, "127.0.0.1", port, setting="PERSONA_X_PORT")
    assert endpoint is not None and endpoint.port == port
    try:
        body = urllib.request.urlopen(endpoint.url, timeout=10).read().decode()
        assert "persona_test_things_total 3.0" in body
    finally:
        endpoint.close()
    endpoint.close()  # idempotent
    with pytest.raises(OSError):
        urllib.request.urlopen(endpoint.url, timeout=2)


def test_port_zero_is_off() -> None:
    assert serve_metrics(CollectorRegistry(), "127.0.0.1", 0, setting="PERSONA_X_PORT") is None


def test_a_taken_port_names_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"127.0.0.1:{port}.*PERSONA_X_PORT"):
            serve_metrics(CollectorRegistry(), "127.0.0.1", port, setting="PERSONA_X_PORT")
