"""Structural checks of docker-compose.yml and the Dockerfile (no Docker engine here, and this
docker CLI has no `compose` plugin, so `docker compose config` cannot run)."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic_settings import BaseSettings

from persona_cli import build_app
from personas.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
SETTINGS_MODULES = (
    "personas.settings",
    "producer.settings",
    "stream_app.settings",
    "monitor.settings",
    "trainer.settings",
    "serving.settings",
)
PINNED = re.compile(r"^[\w./-]+:v?\d+(\.\d+)+([-\w.]*)?$")
APP_IMAGE = "persona-stream:0.1.0"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def known_env_vars() -> set[str]:
    """PERSONA_* variables some settings class reads (env prefix + field name)."""
    names: set[str] = set()
    for module_name in SETTINGS_MODULES:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseSettings)
                and value is not BaseSettings
            ):
                prefix = value.model_config.get("env_prefix", "")
                names |= {f"{prefix}{field}".upper() for field in value.model_fields}
    return names


def cli_paths() -> set[tuple[str, ...]]:
    """Every command path of `persona` (e.g. ("topics", "create"))."""
    root = typer.main.get_command(build_app())
    found: set[tuple[str, ...]] = set()

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found.add(path)
        for name, sub in getattr(command, "commands", {}).items():  # groups have .commands
            walk(sub, (*path, name))

    walk(root, ())
    return found


def test_services_are_the_whole_system(services):
    assert set(services) == {
        "kafka",
        "postgres",
        "mlflow",
        "cloudbeaver",
        "init",
        "stream",
        "monitor",
        "trainer",
        "serve",
        "prometheus",
        "grafana",
    }


def test_every_image_is_pinned_or_built(services):
    for name, service in services.items():
        image = service.get("image")
        assert image or service.get("build"), f"{name} has neither image nor build"
        assert image and PINNED.match(image), f"{name}: image {image!r} is not pinned to a version"
        assert not image.endswith(":latest")
        if "build" in service:
            assert image == APP_IMAGE, f"{name} builds but is tagged {image!r}"
            assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_stack_versions_match_the_local_stack(services):
    kafka_version = Settings.model_fields["kafka_version"].default
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version}"
    assert services["postgres"]["image"].startswith("postgres:15.")


def test_depends_on_targets_exist_with_valid_conditions(services):
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            else:
                assert condition == "service_completed_successfully"
                assert services[target].get("restart") == "no", f"{target} is not one-shot"


def test_no_dependency_cycles(services):
    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"cycle {' -> '.join((*path, name))}"
        for target in services[name].get("depends_on", {}):
            visit(target, (*path, name))

    for name in services:
        visit(name, ())


def test_infrastructure_has_healthchecks_and_apps_wait_for_init(services):
    for name in ("kafka", "postgres", "mlflow", "stream", "serve"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("stream", "monitor", "trainer", "serve"):
        assert services[name]["depends_on"] == {
            "init": {"condition": "service_completed_successfully"}
        }
    for name in ("kafka", "postgres", "mlflow"):
        assert services["init"]["depends_on"][name] == {"condition": "service_healthy"}


def test_persona_env_vars_exist_in_the_settings(services):
    known = known_env_vars()
    seen = 0
    for name, service in services.items():
        for variable in service.get("environment", {}):
            if variable.startswith("PERSONA_"):
                seen += 1
                assert variable in known, f"{name}: {variable} is read by no settings class"
    assert seen > 40


def test_app_env_points_at_the_service_names(services):
    for name in ("init", "stream", "monitor", "trainer", "serve"):
        env = services[name]["environment"]
        assert env["PERSONA_KAFKA_HOST"] == "kafka"
        assert env["PERSONA_PG_HOST"] == "postgres"
        assert env["PERSONA_MLFLOW_TRACKING_URI"] == "http://mlflow:5050"
    kafka_env = services["kafka"]["environment"]
    assert (
        f"kafka:{services['stream']['environment']['PERSONA_KAFKA_PORT']}"
        in (kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    )


def test_commands_are_real_persona_commands(services):
    paths = cli_paths()
    for name in ("stream", "monitor", "trainer", "serve"):
        assert services[name]["command"][0] in {p[0] for p in paths if p}, name
    script = services["init"]["command"][0]
    for step in script.split("&&"):
        words = tuple(step.split())
        assert words[0] == "persona"
        assert words[1:] in paths, f"init runs unknown command {' '.join(words)}"


def test_mlflow_uses_postgres_and_allows_the_service_host(services):
    mlflow = services["mlflow"]
    command = mlflow["command"]
    backend = command[command.index("--backend-store-uri") + 1]
    database = Settings.model_fields["pg_mlflow_database"].default
    assert backend.startswith("postgresql+psycopg://") and backend.endswith(
        f"@postgres:5432/{database}"
    )
    assert "--serve-artifacts" in command
    assert "mlflow:5050" in mlflow["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    init_sql = (ROOT / "infra/compose/postgres-init.sql").read_text()
    assert f"CREATE DATABASE {database};" in init_sql


def test_volumes_are_declared_and_bind_mounts_exist(compose, services):
    declared = set(compose["volumes"])
    used = set()
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared


def test_published_ports_are_unique_match_the_stack_and_are_documented(services):
    published: dict[int, str] = {}
    for name, service in services.items():
        for mapping in service.get("ports", []):
            host = int(str(mapping).split(":")[0])
            assert host not in published, f"port {host} published twice"
            published[host] = name
    defaults = {
        f: Settings.model_fields[f].default for f in ("kafka_port", "pg_port", "mlflow_port")
    }
    assert published[defaults["kafka_port"]] == "kafka"
    assert published[defaults["pg_port"]] == "postgres"
    assert published[defaults["mlflow_port"]] == "mlflow"
    docs = (ROOT / "docs" / "compose.md").read_text()
    for port, name in published.items():
        assert re.search(rf"\|\s*`?{name}`?\s*\|[^\n]*\b{port}\b", docs), (
            f"{name}:{port} not in docs"
        )


def test_dockerfile_is_pinned_and_installs_every_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    assert 'ENTRYPOINT ["persona"]' in dockerfile
    assert "--constraint constraints.txt" in dockerfile
    # every package the wheel ships (pyproject's list), so a new top-level package is not missed
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    packages = [pattern.rstrip("*") for pattern in include]
    assert "persona_cli" in packages
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile, package
    assert re.search(r"^USER\s+persona", dockerfile, flags=re.MULTILINE)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".stack", ".cache", ".git", ".env"} <= set(ignored)


def test_prometheus_scrapes_every_app_service_with_the_shipped_rules(services):
    from infra.stack.prometheus import COMPOSE_TARGETS, compose_config

    config = (ROOT / "infra/compose/prometheus.yml").read_text()
    assert config == compose_config(), (
        "infra/compose/prometheus.yml is stale: regenerate it with compose_config() (its docstring)"
    )
    mounts = services["prometheus"]["volumes"]
    assert "./infra/prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in mounts
    for job, (target,) in COMPOSE_TARGETS.items():
        name, port = target.split(":")
        assert job == f"persona-{name}" and name in services
        env = services[name]["environment"]
        host = {
            "stream": "PERSONA_STREAM_WEB_HOST",
            "monitor": "PERSONA_MONITOR_METRICS_HOST",
            "trainer": "PERSONA_TRAINER_METRICS_HOST",
            "serve": "PERSONA_SERVE_HOST",
        }[name]
        assert env[host] == "0.0.0.0", f"{name} listens on loopback only: Prometheus cannot scrape"
        defaults = {"stream": 6066, "monitor": 6070, "trainer": 6071, "serve": 9999}
        assert int(port) == defaults[name]


def test_grafana_dashboard_reads_the_provisioned_prometheus_and_known_metrics(services):
    import json

    from prometheus_client import CollectorRegistry

    from monitor.counters import MonitorStats
    from monitor.metrics import MonitorMetrics
    from serving.metrics import ServeMetrics
    from stream_app.metrics import StreamMetrics
    from trainer.metrics import TrainerMetrics

    datasources = yaml.safe_load(
        (ROOT / "infra/compose/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    (source,) = datasources["datasources"]
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads((ROOT / "infra/grafana/persona-stream.json").read_text())
    registries: list[CollectorRegistry] = [
        StreamMetrics().registry,
        MonitorMetrics(MonitorStats()).registry,
        TrainerMetrics().registry,
        ServeMetrics().registry,
    ]
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    exported = {
        family.name + suffix
        for registry in registries
        for family in registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }
    rules = (ROOT / "infra/prometheus/rules.yml").read_text()
    recorded = set(re.findall(r"record:\s*(persona[a-z_:]+)", rules))
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(queries) >= 15
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]
    for expr in queries:
        for name in re.findall(r"\bpersona[a-z_:]+", expr):
            assert name in exported or name in recorded, f"dashboard queries unknown {name}"
    mounts = services["grafana"]["volumes"]
    assert "./infra/grafana:/var/lib/grafana/dashboards:ro" in mounts
