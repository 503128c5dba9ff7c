"""A throwaway PostgreSQL cluster for a test session: initdb into a temp dir, pg_ctl on a free
port on loopback, stopped (by pg_ctl, which signals its postmaster PID) when the session ends.

As root (CI), initdb and the server run as the ``postgres`` user, which owns the temp dir.
Each test gets a fresh database (``CREATE DATABASE``), so tests never see each other's rows.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.components import free_port, require

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin",
               "/usr/lib/postgresql/17/bin")


def pg_bin() -> Path | None:
    for d in PG_BIN_DIRS:
        if Path(d, "initdb").exists() and Path(d, "pg_ctl").exists():
            return Path(d)
    return None


@dataclass
class PgCluster:
    bin: Path
    root: Path
    port: int
    user: str = "sre"

    @property
    def data(self) -> Path:
        return self.root / "pg"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        if os.geteuid() == 0:
            cmd = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(_quote(c) for c in cmd)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> None:
        out = self._run(self.bin / "pg_ctl", "-D", self.data, "-w", "-t", "60", "-l",
                        self.root / "log", "-o",
                        f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                        "-c fsync=on -c max_connections=200", "start")
        if out.returncode != 0:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {out.stderr}\n{log[-2000:]}")

    def stop(self, mode: str = "fast") -> None:
        self._run(self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def create_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def start_cluster() -> Iterator[PgCluster]:
    binary = pg_bin()
    require(binary is not None, "PostgreSQL server not installed (apt-get install postgresql)")
    assert binary is not None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        require(False, "psycopg not installed")
    root = Path(tempfile.mkdtemp(prefix="sre-pg-"))
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(root, pg.pw_uid, pg.pw_gid)
    cluster = PgCluster(binary, root, free_port())
    init = cluster._run(binary / "initdb", "-D", cluster.data, "-A", "trust", "-U",
                        cluster.user, "-E", "UTF8", "--no-instructions", timeout=120)
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
    started = time.monotonic()
    cluster.start()
    print(f"\nPostgreSQL up on 127.0.0.1:{cluster.port} in {time.monotonic() - started:.1f}s")
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
