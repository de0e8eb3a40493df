"""PID-file bookkeeping never adopts or kills a stranger's process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from infra.stack.layout import Layout
from infra.stack.mlflow_server import MlflowService
from infra.stack.process import (
    group_alive,
    owned_pid,
    pid_alive,
    port_open,
    start_detached,
    stop_pid,
    wait_until,
)
from personas.errors import StackError
from personas.settings import Settings


def test_stale_pid_file_is_removed(tmp_path: Path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(f"{dead.pid}\n")
    assert owned_pid(pid_file, "anything") is None
    assert not pid_file.exists()


def test_live_process_without_marker_is_not_ours(tmp_path: Path):
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    assert owned_pid(pid_file, "kafka.Kafka") is None


def test_start_and_stop_a_detached_process(tmp_path: Path):
    pid_file = tmp_path / "sleeper.pid"
    pid = start_detached(
        [sys.executable, "-c", "import time; time.sleep(60)", "sleeper-marker"],
        tmp_path / "sleeper.log",
        pid_file,
        dict(os.environ),
    )
    assert owned_pid(pid_file, "sleeper-marker") == pid
    stop_pid(pid, "sleeper", timeout=5)
    assert not pid_alive(pid)


def test_port_taken_by_a_stranger_is_reported(tmp_path: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_open("127.0.0.1", port)
        settings = Settings(_env_file=None, mlflow_port=port, stack_dir=tmp_path / "stack")
        service = MlflowService(settings, Layout.from_settings(settings))
        with pytest.raises(StackError, match=f"port {port} .* is taken .*PERSONA_MLFLOW_PORT"):
            service.start()


def test_stop_waits_for_the_whole_group_even_a_child_that_ignores_sigterm(tmp_path: Path):
    """A leader that dies at once must not hide children that outlive it (MLflow's workers)."""
    script = (
        "import signal, subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        "time.sleep(60)\n"
    )
    pid = start_detached(
        [sys.executable, "-c", script, "group-marker"],
        tmp_path / "g.log",
        tmp_path / "g.pid",
        dict(os.environ),
    )
    assert wait_until(lambda: len(_members(pid)) == 2, 10, 0.1)
    stop_pid(pid, "group", timeout=1)
    assert not group_alive(pid)


def _members(pgid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def test_demo_names_never_meet_the_users() -> None:
    import pytest

    from infra.demo.runner import demo_settings, namespace_env
    from personas.errors import ConfigError
    from personas.settings import Settings

    base = Settings(_env_file=None)
    demo = demo_settings(base)
    for name, value in demo.topics.model_dump().items():
        assert value != getattr(base.topics, name)
        assert f"PERSONA_TOPIC_{name.upper()}={value}" in namespace_env(demo)
    assert (demo.pg_schema, demo.model_name) == ("demo", "persona-model-demo")
    for bad in ("public", "Demo", "a-b", ""):
        with pytest.raises(ConfigError):
            demo_settings(base, bad)


def test_file_lock_keeps_a_second_process_out_until_released(tmp_path: Path):
    """Two `stack up` at once (make test starts both profiles) take turns at Maven and apt-get."""
    from infra.stack.process import file_lock

    lock = tmp_path / "x.lock"
    probe = (
        "import fcntl, sys\n"
        "fh = open(sys.argv[1], 'a')\n"
        "try:\n"
        "    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(1)\n"
    )
    with file_lock(lock):
        assert subprocess.run([sys.executable, "-c", probe, str(lock)]).returncode == 1
    assert subprocess.run([sys.executable, "-c", probe, str(lock)]).returncode == 0


def test_a_fresh_checkout_at_the_same_path_never_reuses_relocated_postgres_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A private checkout's PostgreSQL lives under /var/lib (as root); a new clone at the same
    path must get a new cluster, not the old one's data with the old passwords."""
    import shutil

    from infra.stack import postgres
    from infra.stack.layout import Layout
    from personas.settings import Settings

    monkeypatch.setattr(postgres.os, "geteuid", lambda: 0)
    monkeypatch.setattr(postgres, "_traversable_by_others", lambda _root: False)
    settings = Settings(_env_file=None, stack_dir=tmp_path / ".stack")
    first = postgres.PostgresService(settings, Layout.from_settings(settings)).home
    assert first == postgres.PostgresService(settings, Layout.from_settings(settings)).home
    assert str(first).startswith(str(postgres.RELOCATED))
    shutil.rmtree(tmp_path / ".stack")  # the checkout is replaced by a fresh clone
    second = postgres.PostgresService(settings, Layout.from_settings(settings)).home
    assert second != first
