"""Replace a file so that a reader, or a crash, sees the old content or the new, whole.

One way for every file the daemon and its tools write in place (digests, the
weekly report, notifications, the knowledge base, backups): the new content
goes to a temporary file in the same folder (so the rename never crosses a
file system), is flushed and fsync'ed, gets its mode before anyone can open it
by name, is renamed over the target, and then the folder is fsync'ed so the
rename itself survives a power cut. A failure at any step removes the
temporary file and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename or a new link in it) to disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_synced(tmp: Path, target: Path) -> None:
    """Flush the finished file ``tmp``, rename it over ``target``, and flush the folder.

    For a file something else wrote (SQLite's backup); ``tmp`` must be in
    ``target``'s folder.
    """
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    fsync_dir(target.parent)


def write_atomically(
    path: Path,
    data: str | bytes,
    *,
    mode: int = 0o644,
    folder_mode: int = 0o777,
    replace: bool = True,
) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8), crash-safe.

    With ``replace`` False an existing ``path`` is never overwritten: the
    finished file is linked in under its name, which fails if the name exists.

    ``mode`` is set on the temporary file before the first byte is written, so
    the umask never decides it and the content is never readable more widely
    than ``mode``. A missing folder is created with ``folder_mode`` (less the umask).

    :raises FileExistsError: ``replace`` is False and ``path`` exists.
    :raises OSError: the folder or the file could not be written; ``path`` is unchanged.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True, mode=folder_mode)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        # Keep the original error; the temporary file must not linger.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
