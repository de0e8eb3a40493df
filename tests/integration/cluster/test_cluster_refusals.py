"""On the secured cluster, what a misconfigured client is told: `persona doctor` and the services
themselves refuse a wrong password, an untrusted CA, a user without the ACL, a PostgreSQL
connection without TLS and an MLflow call without credentials — each with its own line naming
the fix, never a traceback or a hang."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from infra.demo.services import persona_argv
from infra.stack.cluster import ADMIN, NOACL, Cluster
from infra.stack.process import free_port
from personas.settings import Settings, settings_env


def _persona(
    settings: Settings, *args: str, mlflow: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = settings_env(settings)
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(name, None)
    env.update(mlflow or {})
    return subprocess.run(
        persona_argv(*args), env=env, capture_output=True, text=True, timeout=timeout
    )


def _checks(result: subprocess.CompletedProcess[str]) -> dict[tuple[str, str], dict[str, str]]:
    document = json.loads(result.stdout)
    return {(c["service"], c["what"]): c for c in document["checks"]}


def test_doctor_passes_for_each_service_user(cluster: Cluster) -> None:
    for user in ("producer", "stream", "monitor", "trainer", "serve"):
        result = _persona(
            cluster.settings(user),
            "doctor",
            "--service",
            user,
            "--json",
            mlflow=cluster.mlflow_env(),
        )
        checks = _checks(result)
        for what in ("reachable", "TLS verified", "authenticated", "authorised", "topics"):
            assert checks[("Kafka", what)]["status"] == "ok", (user, checks[("Kafka", what)])
        assert checks[("PostgreSQL", "TLS verified")]["status"] == "ok"
        assert checks[("MLflow", "authenticated")]["status"] == "ok"
        assert "replication 3" in checks[("Kafka", "topics")]["detail"]


def test_a_wrong_password_is_refused_by_doctor_and_by_the_worker(
    cluster: Cluster, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    settings = cluster.settings("stream").model_copy(update={"kafka_password_file": wrong})
    doctor = _persona(settings, "doctor", "--service", "stream", "--json")
    kafka = _checks(doctor)[("Kafka", "authenticated")]
    assert kafka["status"] == "fail"
    assert "wrong username or password" in kafka["detail"]
    assert "PERSONA_KAFKA_PASSWORD" in kafka["detail"]

    worker = _persona(settings, "stream", "--web-port", str(free_port()))
    assert worker.returncode == 3, worker.stdout + worker.stderr
    assert "authentication failed (wrong username or password)" in worker.stderr
    assert "Traceback" not in worker.stdout + worker.stderr
    assert "not-the-password" not in worker.stdout + worker.stderr


def test_an_untrusted_ca_is_refused(cluster: Cluster) -> None:
    settings = cluster.settings("stream").model_copy(
        update={"kafka_ssl_ca_file": cluster.certs.untrusted_ca}
    )
    tls = _checks(_persona(settings, "doctor", "--service", "stream", "--json"))[
        ("Kafka", "TLS verified")
    ]
    assert tls["status"] == "fail"
    assert "not trusted" in tls["detail"] and "PERSONA_KAFKA_SSL_CA_FILE" in tls["detail"]


def test_a_user_without_the_acl_is_refused_naming_what_it_lacks(cluster: Cluster) -> None:
    settings = cluster.settings(NOACL)
    checks = _checks(_persona(settings, "doctor", "--service", "stream", "--json"))
    assert checks[("Kafka", "authenticated")]["status"] == "ok"
    authorised = checks[("Kafka", "authorised")]
    assert authorised["status"] == "fail"
    assert f"READ on topic {settings.topics.responses}" in authorised["detail"]
    assert f"WRITE on topic {settings.topics.labels}" in authorised["detail"]

    worker = _persona(settings, "stream", "--web-port", str(free_port()))
    assert worker.returncode == 3, worker.stdout + worker.stderr
    assert "user noacl lacks" in worker.stderr
    assert "Traceback" not in worker.stdout + worker.stderr

    monitor = _persona(settings, "monitor", "--window", "7d", "--group-id", "persona-monitor-x")
    assert monitor.returncode == 3
    assert f"READ on topic {settings.topics.labels}" in monitor.stderr


def test_postgres_without_tls_and_mlflow_without_credentials_are_refused(
    cluster: Cluster,
) -> None:
    plain = cluster.settings(ADMIN).model_copy(update={"pg_sslmode": "disable"})
    checks = _checks(_persona(plain, "doctor", "--json"))
    postgres = checks[("PostgreSQL", "TLS verified")]
    assert postgres["status"] == "fail"
    assert "only over TLS" in postgres["detail"], postgres
    mlflow = checks[("MLflow", "authenticated")]
    assert mlflow["status"] == "fail"
    assert "HTTP 401" in mlflow["detail"] and "MLFLOW_TRACKING_USERNAME" in mlflow["detail"]


@pytest.mark.parametrize("user", [ADMIN])
def test_doctor_on_the_cluster_is_all_green_for_the_admin(cluster: Cluster, user: str) -> None:
    result = _persona(cluster.settings(user), "doctor", mlflow=cluster.mlflow_env())
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    # The default model has no champion on a fresh cluster; everything else holds.
    assert all("champion" in line for line in failed), result.stdout
