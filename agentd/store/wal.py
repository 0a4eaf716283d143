"""Background WAL checkpoints for the SQLite store.

In WAL mode a commit appends pages to the write-ahead log; a checkpoint later
copies them into the database file and syncs it. By default the connection
that commits does this itself, in its COMMIT, whenever the log passes 1,000
pages: a writer of large transactions (the gate writes a few hundred pages
per batch) then spends a good part of its commit time, and of its fsyncs,
checkpointing. :class:`Checkpointer` runs PASSIVE checkpoints on a
connection and thread of its own instead, shortly after commits, while the
writer goes on; the writer keeps a much higher threshold of its own as a
safety net should this thread fall behind.

That threshold counts every frame in the log, copied or not: the log starts
over from its beginning only when a write begins after a checkpoint that
copied all of it, which under a steady stream of commits is the exception.
At SQLite's 1,000 (or at 10,000) the writer would, every second or so,
checkpoint in the middle of a commit, copying whatever the background thread
had not yet (tens of megabytes under the gate's load: a 20-30 ms stall, the
gate's whole latency tail). Frequent background passes keep what is left to
copy small, so the log does start over in the gaps between commits; the
writer's own pass is kept for a thread that cannot keep up (under a load
that never pauses, such as the gate's benchmark at saturation, that is every
few seconds, and then it has little left to copy). The log file keeps the
size it grew to (at most about the writer's threshold: 200 MB after a long
burst, a few MB in normal use): cutting it back when the log starts over
(``journal_size_limit``) gave the gate a latency tail of over 100 ms.

Durability does not change: a commit is durable once its log pages are
synced (``synchronous``), whichever connection checkpoints them later.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from loguru import logger

# The writer's own threshold (frames in the log, about 200 MB of 4 KB pages)
# while a Checkpointer runs; SQLite's default is 1000.
WRITER_AUTOCHECKPOINT = 50_000


class Checkpointer:
    """Copy the WAL into the database file in the background, after commits."""

    def __init__(self, path: Path, *, synchronous: str, pause_s: float = 0.05) -> None:
        self.path = path
        self.synchronous = synchronous
        # Commits within this time share one checkpoint: pages written again
        # and again (index pages, the table's last page) are copied once.
        self.pause_s = pause_s
        self.checkpoints = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentd-wal-checkpoint", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def nudge(self) -> None:
        """Say that a transaction committed (cheap; call after every commit)."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread, letting a checkpoint under way finish."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            logger.error("WAL checkpoints: cannot open {}: {}", self.path, exc)
            return
        try:
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            while True:
                self._wake.wait()
                if self._stopping.is_set():
                    return
                self._wake.clear()
                try:
                    # PASSIVE: copies what no reader still needs, never waits
                    # for or blocks the writer or the readers.
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                except sqlite3.Error as exc:
                    logger.warning("WAL checkpoint failed (the writer's own will do): {}", exc)
                if self._stopping.wait(self.pause_s):
                    return
        finally:
            conn.close()
