"""Every service's Prometheus metrics follow the conventions dashboards and rules rely on:
one ``persona_<service>_`` prefix, counters exposed as ``_total``, durations in ``_seconds``,
and the metrics the shipped alerting rules use exist under those names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.counters import MonitorStats
from monitor.metrics import MonitorMetrics
from serving.metrics import ServeMetrics
from stream_app.metrics import StreamMetrics
from trainer.metrics import TrainerMetrics


def _families(registry: CollectorRegistry) -> dict[str, str]:
    """name → type of every metric family, labelled ones without children included."""
    return {family.name: family.type for family in registry.collect()}


def _exposed(registry: CollectorRegistry) -> set[str]:
    """Every series name a scrape can show (a counter ``x`` as ``x_total``, a histogram's parts)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


REGISTRIES: dict[str, Callable[[], CollectorRegistry]] = {
    "stream": lambda: StreamMetrics().registry,
    "monitor": lambda: MonitorMetrics(MonitorStats()).registry,
    "trainer": lambda: TrainerMetrics().registry,
    "serve": lambda: ServeMetrics().registry,
}


@pytest.mark.parametrize("service", sorted(REGISTRIES))
def test_names_follow_prometheus_conventions(service: str) -> None:
    registry = REGISTRIES[service]()
    families = _families(registry)
    assert families, "no metrics at all"
    for name in families:
        assert name.startswith(f"persona_{service}_"), name
        if "seconds" in name:  # the unit is the last word: persona_x_verdict_seconds
            assert name.endswith("_seconds"), name
    text = generate_latest(registry).decode()
    shown = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    for name, kind in families.items():
        if kind == "counter":
            assert f"{name}_total" in _exposed(registry)
            assert not {f"{name}", f"{name}_count"} & shown, f"counter {name} shown without _total"


def test_every_metric_the_rules_use_exists() -> None:
    """A rule over a misspelt metric never fires: each name in infra/prometheus/rules.yml must be
    one a service exports."""
    import re

    exported: set[str] = set()
    for build in REGISTRIES.values():
        exported |= _exposed(build())
    rules = (Path(__file__).parents[2] / "infra" / "prometheus" / "rules.yml").read_text()
    used = set(re.findall(r"\bpersona_[a-z_]+\b", rules))
    recorded = set(re.findall(r"record:\s*(persona_[a-z_:]+)", rules))
    missing = sorted(n for n in used - recorded if n not in exported)
    assert not missing, f"rules use metrics no service exports: {missing}"
