"""PostgreSQL from Debian's packages, as a cluster owned by the project (own data folder, port).

initdb and pg_ctl refuse to run as root, so as root they run as the `postgres` system user; the
data folder then lives where that user can reach it. The cluster's superuser is the app role with
the configured password (a local development stack: one role, two databases).
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from infra.stack.layout import Layout, ServiceStatus
from infra.stack.process import apt_install, file_lock, log_tail, port_open, read_pid, wait_until
from personas.errors import StackError
from personas.settings import Settings

__all__ = ["PostgresService", "PostgresTls", "find_bin_dir", "install_postgres"]

START_TIMEOUT = 60
RELOCATED = Path("/var/lib/persona-stream")


def _traversable_by_others(path: Path) -> bool:
    """Whether a user who is neither the owner nor in the group can reach ``path`` (the nearest
    existing folder and every parent of it must be executable by others)."""
    while not path.exists():
        path = path.parent
    return all(os.stat(p).st_mode & 0o001 for p in (path, *path.parents))


def find_bin_dir() -> Path | None:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for d in reversed(dirs):
        if Path(d, "initdb").exists() and Path(d, "pg_ctl").exists():
            return Path(d)
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found and shutil.which("initdb") else None


def install_postgres() -> Path:
    """apt-get install postgresql without letting Debian create and start its own cluster."""
    if os.geteuid() != 0:
        raise StackError(
            "PostgreSQL server binaries are missing; install them with "
            "`sudo apt-get install -y postgresql` (or run `make up` as root)"
        )
    conf = Path("/etc/postgresql-common/createcluster.conf")
    conf.parent.mkdir(parents=True, exist_ok=True)
    if not conf.exists() or "create_main_cluster" not in conf.read_text():
        with open(conf, "a") as fh:
            fh.write("\ncreate_main_cluster = false\n")
    apt_install("postgresql")
    found = find_bin_dir()
    if found is None:
        raise StackError("postgresql was installed but initdb/pg_ctl were not found")
    return found


@dataclass(frozen=True)
class PostgresTls:
    """TLS of a PostgreSQL that accepts only encrypted, password-authenticated TCP connections."""

    cert: Path
    key: Path


#: pg_hba.conf of a TLS-only server: no `host` line, so a plain TCP connection finds no entry.
HBA_TLS_ONLY = """# Written by the stack (infra/stack/postgres.py): TCP only over TLS, always with a password.
local   all  all                scram-sha-256
hostssl all  all  127.0.0.1/32  scram-sha-256
hostssl all  all  ::1/128       scram-sha-256
"""


class PostgresService:
    name = "postgres"

    def __init__(
        self,
        settings: Settings,
        layout: Layout,
        *,
        tls: PostgresTls | None = None,
        port_variable: str = "PERSONA_PG_PORT",
    ) -> None:
        self.settings = settings
        self.layout = layout
        self.tls = tls
        self.port_variable = port_variable
        self.as_root = os.geteuid() == 0
        self.home = self._home()

    def _home(self) -> Path:
        home = self.layout.service_dir("postgres")
        if not self.as_root or _traversable_by_others(self.layout.root):
            return home
        # As root, PostgreSQL runs as the `postgres` user, which must reach its data folder and
        # write its log; if the project lives where others cannot go (a 0700 home directory),
        # everything that user touches lives in /var/lib instead, keyed by the stack's path and
        # an id kept in the stack folder: a new checkout at the same path (a fresh clone) gets
        # a new cluster, never the data — and the passwords — of the one it replaced.
        key = f"{self.layout.root}:{self._location_id()}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]
        return RELOCATED / digest / "postgres"

    def _location_id(self) -> str:
        marker = self.layout.root / "postgres.location-id"
        try:
            return marker.read_text().strip()
        except FileNotFoundError:
            marker.parent.mkdir(parents=True, exist_ok=True)
            ident = uuid.uuid4().hex
            marker.write_text(ident + "\n")
            return ident

    @property
    def relocated(self) -> bool:
        return self.home != self.layout.service_dir("postgres")

    @property
    def log(self) -> Path:
        """Where the server writes its log: beside its data when it had to leave the stack folder
        (the stack's logs folder then holds a symlink to it)."""
        return self.home / "postgres.log" if self.relocated else self.layout.log_file(self.name)

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def address(self) -> str:
        # Without the password file: pg_dsn reads it even when it leaves it out, and an address
        # must be printable before the first start has made the file.
        return self.settings.model_copy(update={"pg_password_file": None}).pg_dsn(
            with_password=False
        )

    def _run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        # A session of its own, like Kafka and MLflow: the postmaster must not share the caller's
        # process group, or a SIGINT meant for the calling shell (Ctrl-C, a job runner cleaning
        # up) becomes PostgreSQL's "fast shutdown" under the running stack.
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            start_new_session=True,
            timeout=timeout,
        )

    def pid(self) -> int | None:
        pid = read_pid(self.data / "postmaster.pid")
        if pid is None:
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def _conninfo(self) -> str:
        """The server's own database, with the settings' TLS and password (libpq keywords)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(**self.settings.pg_params("postgres"))

    def answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self._conninfo(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def _install(self) -> Path:
        # One apt-get at a time: the other profile's `stack up` may be installing it right now.
        with file_lock(self.layout.cache / "postgres-install.lock"):
            return find_bin_dir() or install_postgres()

    def _initdb(self, bin_dir: Path) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "run").mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile("w", delete=False, dir=self.home, suffix=".pw") as pw:
            pw.write(self.settings.pg_secret() + "\n")
        try:
            if self.as_root:
                shutil.chown(self.home, "postgres", "postgres")
                shutil.chown(self.home / "run", "postgres", "postgres")
                shutil.chown(pw.name, "postgres", "postgres")
                for parent in self.home.parents:
                    if parent.is_relative_to(RELOCATED):
                        os.chmod(parent, 0o755)
            result = self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    self.settings.pg_user,
                    f"--pwfile={pw.name}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                timeout=120,
            )
        finally:
            os.unlink(pw.name)
        if result.returncode != 0:
            raise StackError(f"initdb failed: {result.stderr.strip()[-800:]}")

    def start(self) -> str:
        if self.pid() is not None:
            if wait_until(self.answers, 20):
                self._ensure_databases()
                return "already running"
            raise StackError(
                f"PostgreSQL is running but does not answer at {self.address}; see {self.log}"
            )
        if port_open(self.settings.pg_host, self.settings.pg_port):
            raise StackError(
                f"port {self.settings.pg_port} on {self.settings.pg_host} is taken by a process "
                f"that is not this stack's PostgreSQL; stop it or set {self.port_variable}"
            )
        bin_dir = find_bin_dir() or self._install()
        self._initdb(bin_dir)
        log = self._prepare_log()
        options = (
            f"-p {self.settings.pg_port} -c listen_addresses={self.settings.pg_host} "
            f"-k {self.home / 'run'} -c max_connections=200" + self._tls_options()
        )
        result = self._run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT),
                "start",
            ],
            timeout=START_TIMEOUT + 10,
        )
        if result.returncode != 0 or not wait_until(self.answers, 20):
            raise StackError(
                f"PostgreSQL did not start: {result.stdout.strip()} {result.stderr.strip()}; "
                f"see {log}:\n{log_tail(log)}"
            )
        self._ensure_databases()
        return "started"

    def _tls_options(self) -> str:
        """Copy the certificate and key where the server's user can read them (the key 0600,
        owned by that user, as PostgreSQL demands) and write a TLS-only pg_hba.conf."""
        if self.tls is None:
            return ""
        folder = self.home / "tls"
        folder.mkdir(parents=True, exist_ok=True)
        cert, key, hba = folder / "server.crt", folder / "server.key", folder / "pg_hba.conf"
        shutil.copyfile(self.tls.cert, cert)
        shutil.copyfile(self.tls.key, key)
        hba.write_text(HBA_TLS_ONLY)
        os.chmod(folder, 0o700)
        os.chmod(key, 0o600)
        if self.as_root:
            for path in (folder, cert, key, hba):
                shutil.chown(path, "postgres", "postgres")
        return (
            f" -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key} -c hba_file={hba}"
            " -c ssl_min_protocol_version=TLSv1.2"
        )

    def _prepare_log(self) -> Path:
        log = self.log
        log.parent.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            log.touch()
            shutil.chown(log, "postgres", "postgres")
        if self.relocated:  # `.stack/logs/postgres.log` still leads to it
            link = self.layout.log_file(self.name)
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(log)
        return log

    def _ensure_databases(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            for name in (self.settings.pg_database, self.settings.pg_mlflow_database):
                if name not in existing:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def stop(self) -> str:
        if self.pid() is None:
            return "not running"
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise StackError("cannot stop PostgreSQL: pg_ctl not found")
        result = self._run(
            [str(bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"],
            timeout=70,
        )
        if result.returncode != 0:
            raise StackError(f"pg_ctl stop failed: {result.stderr.strip()}")
        return "stopped"

    def status(self) -> ServiceStatus:
        pid = self.pid()
        tls = "TLS only, " if self.tls is not None else ""
        return ServiceStatus(
            self.name,
            self.address,
            pid,
            pid is not None and self.answers(),
            f"{tls}data {self.data}, log {self.log}",
        )
