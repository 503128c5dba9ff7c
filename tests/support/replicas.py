"""Several real agents on one PostgreSQL database, behind a real Alertmanager HA pair.

    with running_replicas(url, tmp_path, count=2, SRE_AGENT_MODE="autonomous") as agents:
        with alertmanager_pair(tmp_path, [a.webhook_url for a in agents], TOKEN) as ams:
            push_alerts(ams, [{"labels": {"alertname": "X", "container": name}}])
            ...
            agents[0].kill9()

Each replica is a ``python -m sre_agent serve`` process (role ``all``) on a free port, JSON logs
in ``<work_dir>/<name>.log``, stopped by its PID afterwards (SIGTERM, then SIGKILL). The pair is
two Alertmanager 0.25 binaries gossiping on loopback (``--cluster.listen-address`` /
``--cluster.peer``, PLATFORM.md), each with one receiver that sends every notification to every
replica: what an operator running two agents behind an HA pair configures. ``db`` reads the
shared database directly (psycopg), so assertions do not depend on either replica's API.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.support.alertmanager import alertmanager_config, http_json, post_alerts
from tests.support.components import free_port, require_binary
from tests.support.processes import ServerProcess, start_on_free_port

TOKEN = "replica-webhook-token-1"
AM_BINARY = "prometheus-alertmanager"


@dataclass
class Replica:
    name: str
    process: subprocess.Popen[bytes]
    base: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def webhook_url(self) -> str:
        return f"{self.base}/webhook/alertmanager"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill9(self) -> None:
        """``kill -9``: no shutdown, no lease release, nothing flushed."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                if isinstance(record, dict):
                    out.append(record)
        return out

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def serve_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of one replica: nothing inherited from SRE_AGENT_*, fast sweeps."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    env.update(SRE_AGENT_DATABASE_URL=database_url, SRE_AGENT_WEBHOOK_TOKEN=TOKEN,
               SRE_AGENT_LOG_FORMAT="json", SRE_AGENT_RESUME_SWEEP_S="1",
               SRE_AGENT_LEASE_TTL_S="5")
    env.update(extra)
    return env


def start_replica(database_url: str, work_dir: Path, name: str, **extra: str) -> Replica:
    port = free_port()
    log_path = work_dir / f"{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sre_agent", "serve", "--port", str(port)],
            env=serve_env(database_url, **extra), cwd=work_dir, stdout=log,
            stderr=subprocess.STDOUT)
    return Replica(name, proc, f"http://127.0.0.1:{port}", log_path)


def wait_replica_ready(replica: Replica, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not replica.alive():
            raise AssertionError(f"{replica.name} exited:\n{replica.log_tail()}")
        try:
            if httpx.get(f"{replica.base}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{replica.name} not ready within {timeout:.0f}s:\n"
                         f"{replica.log_tail()}")


def stop_replica(replica: Replica) -> None:
    if replica.alive():
        replica.process.send_signal(signal.SIGTERM)
        try:
            replica.process.wait(20)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait(10)


@contextlib.contextmanager
def running_replicas(database_url: str, work_dir: Path, count: int = 2,
                     **extra: str) -> Iterator[list[Replica]]:
    """``count`` replicas on one database, ready; each stopped by its PID afterwards."""
    started = [start_replica(database_url, work_dir, f"r{i}", **extra) for i in range(count)]
    try:
        for replica in started:
            wait_replica_ready(replica)
        yield started
    finally:
        for replica in started:
            stop_replica(replica)


# --- the Alertmanager HA pair --------------------------------------------------------------

def pair_config(webhook_urls: list[str], bearer_token: str, **options: Any) -> str:
    """One route, one receiver, one webhook per replica (the same token for each)."""
    config = json.loads(alertmanager_config(webhook_urls[0], bearer_token=bearer_token,
                                            **options))
    (receiver,) = config["receivers"]
    hook = receiver["webhook_configs"][0]
    receiver["webhook_configs"] = [{**hook, "url": url} for url in webhook_urls]
    return json.dumps(config, indent=2)


def cluster_peers(am: ServerProcess) -> int:
    status = http_json("GET", f"{am.url}/api/v2/status")
    return len((status.get("cluster") or {}).get("peers") or [])


@contextlib.contextmanager
def alertmanager_pair(work_dir: Path, webhook_urls: list[str], bearer_token: str = TOKEN, *,
                      peer_timeout: str = "10ms", settle_timeout: float = 30.0,
                      **config_options: Any) -> Iterator[list[ServerProcess]]:
    """Two Alertmanagers in one gossip cluster, both notifying every URL in ``webhook_urls``;
    yielded once each lists both peers. ``peer_timeout`` is how long the second instance waits
    for the first's notification log before it sends too (0.25's default is 15 s); the
    default here is short, so both instances notify both replicas: the worst case."""
    binary = require_binary(AM_BINARY)
    config_path = work_dir / "alertmanager-pair.yml"
    config_path.write_text(pair_config(webhook_urls, bearer_token, **config_options))
    gossip = [free_port(), free_port()]

    def command(index: int) -> Callable[[int, int], list[str]]:
        def build(port: int, attempt: int) -> list[str]:
            return [binary, f"--config.file={config_path}",
                    f"--storage.path={work_dir / f'am{index}-data-{attempt}'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    f"--web.external-url=http://127.0.0.1:{port}",
                    f"--cluster.listen-address=127.0.0.1:{gossip[index]}",
                    f"--cluster.advertise-address=127.0.0.1:{gossip[index]}",
                    f"--cluster.peer=127.0.0.1:{gossip[1 - index]}",
                    f"--cluster.peer-timeout={peer_timeout}",
                    "--cluster.gossip-interval=100ms", "--cluster.pushpull-interval=2s",
                    "--log.level=warn"]
        return build

    with contextlib.ExitStack() as stack:
        ams = [stack.enter_context(start_on_free_port(command(i), work_dir, name=f"am{i}",
                                                      config_path=config_path))
               for i in range(2)]
        deadline = time.monotonic() + settle_timeout
        while not all(cluster_peers(am) == 2 for am in ams):
            if time.monotonic() > deadline:
                raise AssertionError("the Alertmanager pair did not form a cluster:\n"
                                     + "\n".join(am.log_tail() for am in ams))
            time.sleep(0.2)
        yield ams


def push_alerts(ams: list[ServerProcess], alerts: list[dict[str, Any]]) -> None:
    """What Prometheus does: every alert to every Alertmanager of the pair."""
    for am in ams:
        post_alerts(am.url, alerts)


def rfc3339(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the shared database, read directly ----------------------------------------------------

class Db:
    """Plain reads of the agents' shared PostgreSQL database (psycopg, autocommit)."""

    def __init__(self, sqlalchemy_url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(sqlalchemy_url.replace("postgresql+psycopg://",
                                                           "postgresql://"), autocommit=True)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Db:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(sql, params).fetchall())

    def one(self, sql: str, *params: Any) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def types(self, incident_id: str | None = None) -> list[str]:
        if incident_id is None:
            return [r[0] for r in self.rows("SELECT type FROM events ORDER BY seq")]
        return [r[0] for r in self.rows(
            "SELECT type FROM events WHERE incident_id = %s ORDER BY seq", incident_id)]

    def events(self, type_: str) -> list[dict[str, Any]]:
        return [{"seq": seq, "incident_id": inc, "actor": actor, "data": json.loads(data)
                 if isinstance(data, str) else data}
                for seq, inc, actor, data in self.rows(
                    "SELECT seq, incident_id, actor, data FROM events WHERE type = %s "
                    "ORDER BY seq", type_)]

    def incidents(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT id FROM incidents ORDER BY id")]

    def lease_owner(self, incident_id: str) -> str | None:
        owner = self.one("SELECT owner FROM leases WHERE incident_id = %s", incident_id)
        return None if owner is None else str(owner)


def owner_pid(owner: str) -> int:
    """The PID in a replica id (``host:pid:suffix``, ``pipeline.runner.replica_id``)."""
    return int(owner.split(":")[-2])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.2) -> Any:
    """Poll until ``predicate()`` is truthy; return it, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


# --- Docker's own account ------------------------------------------------------------------

def docker_actions(client: Any, container_id: str, since: float) -> list[str]:
    """The daemon's events for one container since ``since`` (epoch seconds): start, kill,
    die, stop, restart..."""
    until = time.time() + 0.5
    stream = client.events(since=since, until=until, decode=True,
                           filters={"container": container_id, "type": "container"})
    return [str(e.get("Action") or e.get("status")) for e in stream]
