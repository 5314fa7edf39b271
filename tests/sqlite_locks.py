"""Whether another SQLite connection can take a database's write lock: the read model's tests of
who holds it (a unit of work, a cancelled transaction) ask this from outside SQLAlchemy."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def writable(path: Path, timeout: float) -> bool:
    """Whether a fresh connection gets the write lock (BEGIN IMMEDIATE) within `timeout` s."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:  # database is locked
        return False
    finally:
        conn.close()
