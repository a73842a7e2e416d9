"""The stat cache: a file whose (inode, size, mtime) did not change keeps its digest.

Kept in its own small SQLite file (``STEMMA_DIR/statcache.db``) on the client, so it
works whichever backend stores the blobs. Like git's index, an entry whose mtime is
within a couple of seconds of when it was hashed is not trusted (the file could
change again within the same timestamp tick), so it is simply re-hashed next time.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

RACY_SECONDS = 2.0


class StatCache:
    """Maps an absolute path and its stat to the SHA-256 of its contents."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path), timeout=30, check_same_thread=False, isolation_level=None
        )
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS stat (path TEXT PRIMARY KEY, inode INTEGER, "
            "size INTEGER, mtime_ns INTEGER, digest TEXT)"
        )

    def lookup(self, files: Iterable[tuple[str, os.stat_result]]) -> dict[str, str]:
        """Digests of the files whose stat still matches, keyed by path."""
        wanted = dict(files)
        if not wanted:
            return {}
        out: dict[str, str] = {}
        keys = list(wanted)
        with self._lock:
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                q = (
                    "SELECT path, inode, size, mtime_ns, digest FROM stat WHERE path IN "
                    f"({','.join('?' * len(part))})"
                )
                for path, inode, size, mtime_ns, digest in self._db.execute(q, part):
                    st = wanted[path]
                    if (st.st_ino, st.st_size, st.st_mtime_ns) == (inode, size, mtime_ns):
                        out[path] = digest
        return out

    def record(
        self, rows: Iterable[tuple[str, os.stat_result, str]], trusted: bool = False
    ) -> None:
        """Remember digests, skipping files modified too recently to trust.

        ``trusted`` is for files Stemma itself just wrote and stamped with a past mtime
        (downloads): no one else can have changed them within that timestamp tick.
        """
        now_ns = time.time_ns()
        racy = int(RACY_SECONDS * 1e9)
        data = [
            (p, st.st_ino, st.st_size, st.st_mtime_ns, d)
            for p, st, d in rows
            if trusted or now_ns - st.st_mtime_ns > racy
        ]
        if not data:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO stat (path, inode, size, mtime_ns, digest) "
                    "VALUES (?, ?, ?, ?, ?)",
                    data,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._db.close()
