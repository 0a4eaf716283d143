"""``agentd backup DEST``: an online, consistent copy of the SQLite store while the daemon runs.

SQLite's online backup API copies the database page by page under its own
locks, so the copy is consistent even with the daemon writing (WAL). The copy
is written to a temporary file beside ``DEST``, checked with
``PRAGMA integrity_check``, then renamed into place: a failed or interrupted
backup never leaves a half-written file under the final name.

The vault key is deliberately not part of the backup: keep it (or the systemd
credential) apart from the data it protects.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

from agentd.atomic import replace_synced
from agentd.errors import StoreError

PAGES_PER_STEP = 1024


def backup_database(source: Path, dest: Path, *, progress: bool = False) -> dict[str, object]:
    """Copy the database at ``source`` to ``dest`` atomically; return what was copied.

    :raises StoreError: no database at ``source``, the copy failed or did not verify.
    """
    if not source.is_file():
        raise StoreError(f"no database at {source} (is the state folder right?)")
    if dest.exists() and dest.is_dir():
        dest = dest / source.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        out = sqlite3.connect(tmp)
        try:

            def report(status: int, remaining: int, total: int) -> None:
                if progress and total:
                    done = total - remaining
                    print(f"\rbackup: {done}/{total} pages", end="", file=sys.stderr, flush=True)

            src.backup(out, pages=PAGES_PER_STEP, progress=report)
            if progress:
                print(file=sys.stderr)
            check = out.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise StoreError(f"the copy does not verify: {check}")
            version = out.execute("PRAGMA user_version").fetchone()[0]
            audit = out.execute("SELECT count(*) FROM audit").fetchone()[0]
            out.execute("PRAGMA journal_mode = DELETE")
        finally:
            out.close()
            src.close()
        replace_synced(tmp, dest)
    except sqlite3.Error as exc:
        raise StoreError(f"backup of {source} failed: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return {
        "source": str(source),
        "backup": str(dest),
        "bytes": dest.stat().st_size,
        "schema_version": version,
        "audit_records": audit,
    }
