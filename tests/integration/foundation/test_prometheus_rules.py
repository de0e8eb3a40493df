"""The shipped Prometheus rules are valid and do what they say: `promtool check rules` and the
rule unit tests in infra/prometheus/rules_test.yml (every alert fires on its series, and the
"service down" alert stays quiet for a service that was never started)."""

from __future__ import annotations

import subprocess

from infra.stack.prometheus import RULES, find_binary


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = find_binary("promtool")
    assert promtool is not None, "promtool is not installed: `make up` installs Prometheus"
    return subprocess.run([promtool, *args], capture_output=True, text=True, check=False)


def test_rules_are_valid() -> None:
    done = _promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_fires_on_its_series_and_only_there() -> None:
    done = _promtool("test", "rules", str(RULES.with_name("rules_test.yml")))
    assert done.returncode == 0, done.stdout + done.stderr
