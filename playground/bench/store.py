"""Benchmark history in SQLite: one row per run, one per point.

A run is written as it goes: its row first (status 'running:PID'), then each point in its own
transaction as soon as it is measured, then the final status. A sweep killed mid-way (kill -9,
out of memory, power) keeps the points it finished; the next reader marks it 'interrupted'."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from playground.bench.sweep import PointResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    environment TEXT NOT NULL,
    spec TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS points (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    precision TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    row TEXT NOT NULL
);
"""


def connect(data_dir: str | Path) -> sqlite3.Connection:
    path = Path(data_dir).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path / "bench.sqlite")
    conn.executescript(SCHEMA)
    return conn


def start_run(conn: sqlite3.Connection, *, backend: str, model: str, environment: dict, spec: dict) -> int:
    with conn:
        cur = conn.execute(
            "INSERT INTO runs (created_at, status, backend, model, environment, spec) VALUES (?, ?, ?, ?, ?, ?)",
            (time.strftime("%Y-%m-%d %H:%M:%S"), f"running:{os.getpid()}", backend, model, json.dumps(environment),
             json.dumps(spec)))
    return cur.lastrowid


def add_point(conn: sqlite3.Connection, run_id: int, point: PointResult) -> None:
    with conn:
        conn.execute("INSERT INTO points (run_id, precision, concurrency, row) VALUES (?, ?, ?, ?)",
                     (run_id, point.precision, point.concurrency, json.dumps(point.as_row())))


def finish_run(conn: sqlite3.Connection, run_id: int, status: str) -> None:
    with conn:
        conn.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def mark_interrupted(conn: sqlite3.Connection) -> None:
    """Runs whose process is gone without finishing them become 'interrupted' (their points stay)."""
    for run_id, status in conn.execute("SELECT id, status FROM runs WHERE status LIKE 'running:%'").fetchall():
        if not _alive(int(status.split(":")[1])):
            finish_run(conn, run_id, "interrupted")


def save_run(conn: sqlite3.Connection, *, status: str, backend: str, model: str, environment: dict,
             spec: dict, points: Sequence[PointResult]) -> int:
    with conn:  # one transaction: the run and all its points, or nothing
        cur = conn.execute(
            "INSERT INTO runs (created_at, status, backend, model, environment, spec) VALUES (?, ?, ?, ?, ?, ?)",
            (time.strftime("%Y-%m-%d %H:%M:%S"), status, backend, model, json.dumps(environment), json.dumps(spec)),
        )
        run_id = cur.lastrowid
        conn.executemany(
            "INSERT INTO points (run_id, precision, concurrency, row) VALUES (?, ?, ?, ?)",
            [(run_id, p.precision, p.concurrency, json.dumps(p.as_row())) for p in points],
        )
    return run_id


def save_rows(conn: sqlite3.Connection, *, status: str, backend: str, model: str, environment: dict, spec: dict,
              rows: Sequence[dict]) -> int:
    """A run measured elsewhere (a guidellm report), its points already as rows."""
    with conn:
        cur = conn.execute(
            "INSERT INTO runs (created_at, status, backend, model, environment, spec) VALUES (?, ?, ?, ?, ?, ?)",
            (time.strftime("%Y-%m-%d %H:%M:%S"), status, backend, model, json.dumps(environment), json.dumps(spec)))
        conn.executemany("INSERT INTO points (run_id, precision, concurrency, row) VALUES (?, ?, ?, ?)",
                         [(cur.lastrowid, r["precision"], r["concurrency"], json.dumps(r)) for r in rows])
    return cur.lastrowid


def list_runs(conn: sqlite3.Connection) -> list[dict]:
    mark_interrupted(conn)
    rows = conn.execute(
        "SELECT r.id, r.created_at, r.status, r.backend, r.model, COUNT(p.run_id) FROM runs r "
        "LEFT JOIN points p ON p.run_id = r.id GROUP BY r.id ORDER BY r.id DESC"
    ).fetchall()
    return [dict(zip(("id", "created_at", "status", "backend", "model", "points"), r), status=_shown(r[2])) for r in rows]


def _shown(status: str) -> str:
    return "running" if status.startswith("running:") else status


def load_run(conn: sqlite3.Connection, run_id: int) -> tuple[dict, list[dict]]:
    run = conn.execute("SELECT id, created_at, status, backend, model, environment, spec FROM runs WHERE id = ?",
                       (run_id,)).fetchone()
    if run is None:
        known = [r["id"] for r in list_runs(conn)]
        raise KeyError(f"run_id {run_id} does not exist; saved runs: {known or 'none'}")
    meta = dict(zip(("id", "created_at", "status", "backend", "model"), run[:5]))
    meta["status"] = _shown(meta["status"])
    meta["environment"], meta["spec"] = json.loads(run[5]), json.loads(run[6])
    points = [json.loads(r[0]) for r in conn.execute(
        "SELECT row FROM points WHERE run_id = ? ORDER BY precision, concurrency", (run_id,))]
    return meta, points


def to_csv(points: Sequence[dict]) -> str:
    if not points:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(points[0]))
    writer.writeheader()
    for p in points:
        writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in p.items()})
    return out.getvalue()


def to_json(meta: dict, points: Sequence[dict]) -> str:
    return json.dumps({"run": meta, "points": list(points)}, indent=2)
