"""A throw-away PostgreSQL cluster for tests: Debian's `postgresql` binaries, `initdb` into a temp folder, `pg_ctl`
start with a unix socket in that folder (no TCP port), stopped and deleted at the end.

The binaries are looked up under /usr/lib/postgresql/*/bin (newest version first) and on PATH; when there are none
and we are root, `apt-get install -y -qq postgresql` installs them (as the report test does with Chromium). initdb
refuses to run as root, so as root the cluster runs as the `postgres` system user (created if missing) through
`runuser`. Every failure raises RuntimeError with the command's output: the PostgreSQL tests fail, never skip.
"""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

SUPERUSER = "rk"
_counter = itertools.count()


def _bin_dir() -> Optional[Path]:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name)
                  if Path(d).parent.name.isdigit() else 0, reverse=True)
    for d in dirs:
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def _run(cmd: list[str], what: str, timeout: float = 600) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"{what} failed: {e}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def ensure_binaries() -> Path:
    """The folder holding initdb and pg_ctl, installing Debian's postgresql package when missing (as root)."""
    found = _bin_dir()
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("PostgreSQL binaries not found (/usr/lib/postgresql/*/bin) and not root to install them: "
                           "run `apt-get install -y postgresql`")
    env_apt = ["env", "DEBIAN_FRONTEND=noninteractive"]
    _run(env_apt + ["apt-get", "update", "-qq"], "apt-get update")
    _run(env_apt + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
         "apt-get install postgresql")
    found = _bin_dir()
    if found is None:
        raise RuntimeError("installed postgresql but found no initdb under /usr/lib/postgresql/*/bin")
    return found


def _service_user() -> Optional[str]:
    """None when we may run initdb ourselves; else the unprivileged user to run it as (root: `postgres`)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        _run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"],
             "creating the postgres system user")
    return "postgres"


class Cluster:
    """One running PostgreSQL server on a unix socket in `self.dir`; `url(db)` for SQLAlchemy / Store.open."""

    def __init__(self):
        self.bin = ensure_binaries()
        self.user = _service_user()
        self.dir = Path(tempfile.mkdtemp(prefix="rkpg-"))  # short: a socket path has at most ~107 bytes
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.started = False
        if self.user is not None:
            shutil.chown(self.dir, self.user, self.user)
            os.chmod(self.dir, 0o755)

    def _as_user(self, cmd: list[str]) -> list[str]:
        return cmd if self.user is None else ["runuser", "-u", self.user, "--"] + cmd

    def start(self) -> "Cluster":
        _run(self._as_user([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", SUPERUSER,
                            "-E", "UTF8", "--no-sync", "--no-instructions"]), "initdb", timeout=120)
        options = (f"-k {self.dir} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=200")
        try:
            _run(self._as_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log),
                                "-w", "-t", "60", "start"]), "pg_ctl start", timeout=90)
        except RuntimeError as e:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{e}\nserver log:\n{tail}") from None
        self.started = True
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{dbname}?host={self.dir}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(host=str(self.dir), user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            subprocess.run(self._as_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                          "-w", "stop"]), capture_output=True, timeout=60)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)
