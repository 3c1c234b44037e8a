"""The naive uploader and its minimal Flask endpoint: the baseline ``drain_vs_naive`` beats.

What a first version of an offline uploader usually is: rows in a plain sqlite3 table,
POSTed as uncompressed JSON batches of 500, ``INSERT … ON CONFLICT DO NOTHING`` into
SQLite on the server, acked rows deleted. No encryption, no per-entry verdicts, no
transactions, no compression. Both SQLite files use WAL and ``synchronous=FULL``, as
fieldsync's do, so the comparison is about the work, not the durability setting.

Run the endpoint as ``python -m benchmarks.naive --port P --db FILE`` (waitress, the
same server ``fieldsync-server serve`` uses).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
from flask import Flask, Response, jsonify, request

BATCH = 500


def create_naive_app(db_path: str | Path) -> Flask:
    """A Flask app with ``POST /upload`` and ``GET /healthz`` over one SQLite file."""
    app = Flask("naive")
    local = threading.local()
    _connect(db_path).execute(
        "create table if not exists ops (op_id text primary key, body text not null)"
    ).connection.close()

    def conn() -> sqlite3.Connection:
        c: sqlite3.Connection | None = getattr(local, "conn", None)
        if c is None:
            c = local.conn = _connect(db_path)
        return c

    @app.post("/upload")
    def upload() -> Response:
        entries = request.get_json(force=True)["entries"]
        db = conn()
        with db:
            db.executemany(
                "insert into ops (op_id, body) values (?, ?) on conflict (op_id) do nothing",
                [(e["op_id"], json.dumps(e)) for e in entries],
            )
        return jsonify(acked=[e["op_id"] for e in entries])

    @app.get("/healthz")
    def healthz() -> Response:
        conn().execute("select 1").fetchall()
        return jsonify(status="ok")

    return app


def load_outbox(path: str | Path, entries: Iterable[Mapping[str, Any]]) -> None:
    """Create the naive device's plain table holding ``entries`` (JSON rows, in order)."""
    db = _connect(path)
    try:
        with db:
            db.execute(
                "create table outbox (id integer primary key, op_id text not null, body text)"
            )
            db.executemany(
                "insert into outbox (op_id, body) values (?, ?)",
                [(e["op_id"], json.dumps(e)) for e in entries],
            )
    finally:
        db.close()


def drain(path: str | Path, client: httpx.Client, batch: int = BATCH) -> int:
    """Upload every row, oldest first, deleting what the server acked; return rows sent."""
    db = _connect(path)
    sent = 0
    try:
        for _ in range(1_000_000):  # bounded: one pass per batch
            rows = db.execute(
                "select id, body from outbox order by id limit ?", (batch,)
            ).fetchall()
            if not rows:
                return sent
            body = json.dumps({"entries": [json.loads(b) for _, b in rows]}).encode()
            response = client.post(
                "/upload", content=body, headers={"Content-Type": "application/json"}
            )
            response.raise_for_status()
            ids = {json.loads(b)["op_id"]: i for i, b in rows}
            acked = response.json()["acked"]
            with db:
                db.executemany("delete from outbox where id = ?", [(ids[a],) for a in acked])
            sent += len(rows)
        raise RuntimeError("naive drain did not finish")
    finally:
        db.close()


def _connect(path: str | Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("pragma journal_mode = wal")
    db.execute("pragma synchronous = full")
    db.execute("pragma busy_timeout = 10000")
    return db


def main(argv: list[str] | None = None) -> None:
    """Serve the naive endpoint on 127.0.0.1 (waitress, as ``fieldsync-server serve`` is)."""
    import waitress

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args(argv)
    waitress.serve(create_naive_app(args.db), host="127.0.0.1", port=args.port, threads=4)


if __name__ == "__main__":
    main()
