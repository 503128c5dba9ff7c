"""Client CPU of one 50-row INSERT of alert rows: ``store/bulk.insert_rows`` against
SQLAlchemy's ``conn.execute(insert(alerts), rows)``, on SQLite and on PostgreSQL 15.

Both run in one transaction, interleaved (one of each per round, 300 rounds, fresh rows each
time), and ``time.process_time`` counts this process's CPU only: what the store's writer
spends inside the transaction that holds the chain head. Writes
benchmarks/results/bulk_insert.json.

    .venv/bin/python benchmarks/bulk_insert.py [--rounds 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sqlalchemy import insert
from tests.support.postgres import start_cluster

from benchmarks.common import code_label, machine, write_result
from sre_agent.store.bulk import insert_rows
from sre_agent.store.schema import alerts
from sre_agent.store.sql import SqlEventStore

ROWS = 50


def rows(batch: int) -> list[dict[str, Any]]:
    return [{"incident_id": "inc-bench", "fingerprint": f"fp{batch}-{i}",
             "starts_at": "2026-01-01T00:00:00Z", "status": "firing", "alertname": "HighCPU",
             "labels": {"alertname": "HighCPU", "instance": f"host{i}:9100", "job": "node",
                        "severity": "warning"},
             "annotations": {"summary": "CPU high",
                             "description": "CPU above 90% for 5 minutes on the host"},
             "generator_url": "http://prometheus:9090/graph?g0.expr=x",
             "ends_at": "0001-01-01T00:00:00Z", "received_seq": i} for i in range(ROWS)]


def measure(url: str, rounds: int) -> dict[str, float]:
    store = SqlEventStore(url)
    ours = theirs = 0.0
    try:
        with store.engine.begin() as conn:
            for k in range(rounds):
                a, b = rows(2 * k), rows(2 * k + 1)
                t = time.process_time()
                insert_rows(conn, alerts, a)
                ours += time.process_time() - t
                t = time.process_time()
                conn.execute(insert(alerts), b)
                theirs += time.process_time() - t
    finally:
        store.engine.dispose()
    return {"insert_rows_ms": round(ours / rounds * 1000, 3),
            "sqlalchemy_execute_ms": round(theirs / rounds * 1000, 3),
            "ratio": round(ours / theirs, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    result: dict[str, Any] = {"machine": machine(), "code": code_label(), "rows": ROWS,
                              "rounds": args.rounds, "backends": {}}
    with tempfile.TemporaryDirectory() as tmp:
        result["backends"]["sqlite"] = measure(f"sqlite:///{tmp}/bulk.db", args.rounds)
    clusters = start_cluster()
    cluster = next(clusters)
    try:
        result["backends"]["postgresql"] = measure(str(cluster.create_database()), args.rounds)
    finally:
        clusters.close()
    for name, figures in result["backends"].items():
        print(f"{name}: {figures}")
    print(f"written to {write_result('bulk_insert', result)}")


if __name__ == "__main__":
    main()
