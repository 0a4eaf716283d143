"""One daemon per state folder: an exclusive ``flock`` on a lock file in it.

Two daemons on one database would each keep their own audit chain head and
write over each other (the second's first audit record collides with the
first's, and from then on every write of the first fails). The lock is taken
before the store opens and held, by an open file, for the life of the
process: the kernel releases it when the process ends, however it ends, so a
``kill -9`` leaves no stale lock behind. The file holds the holder's pid, for
the error message of the daemon that is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from agentd.errors import StoreError

LOCK_NAME = "agentd.lock"


class StateLock:
    """Hold exclusive locks on the state folder (and the database's, if elsewhere)."""

    def __init__(self, state_dir: Path, database: Path | None = None) -> None:
        paths = [state_dir / LOCK_NAME]
        if database is not None and database.parent.resolve() != state_dir.resolve():
            paths.append(database.with_name(database.name + ".lock"))
        self.paths = paths
        self._fds: list[int] = []

    def acquire(self) -> None:
        """Take every lock, or none.

        :raises StoreError: another process holds one (naming its pid), or a
            lock file cannot be created.
        """
        try:
            for path in self.paths:
                self._fds.append(_lock(path))
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Release the locks (the files stay: removing one would race a new holder)."""
        fds, self._fds = self._fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def _lock(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StoreError(
            f"cannot create the lock file {path}: {exc.strerror}", details={"path": str(path)}
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        who = f"agentd pid {holder}" if holder else "another process"
        raise StoreError(
            f"{path.parent} is in use by {who} (it holds {path}); "
            f"only one daemon may run on a state folder",
            details={"path": str(path), "pid": holder},
        ) from None
    except OSError as exc:
        os.close(fd)
        raise StoreError(
            f"cannot lock {path}: {exc.strerror}", details={"path": str(path)}
        ) from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
