"""``agentd backup DEST`` on PostgreSQL: PostgreSQL's own ``pg_dump``, in its custom format.

``pg_dump`` reads one consistent snapshot while the daemons go on writing.
As with the SQLite backup, the dump is written to a temporary file beside
``DEST``, checked (``pg_restore --list`` reads its table of contents), then
renamed into place, so a failed or interrupted backup never leaves a
half-written file under the final name. Restore it with ``pg_restore``
(see the operator guide).

The password, if the URL has one, reaches ``pg_dump`` in its environment,
never on its command line (which other users of the host can read).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from agentd.atomic import replace_synced
from agentd.core.store_url import redact_url
from agentd.errors import StoreError

#: Where Debian installs each major version's client binaries.
DEBIAN_ROOT = Path("/usr/lib/postgresql")


def find_tool(name: str, env: dict[str, str] | None = None) -> Path | None:
    """Return ``pg_dump``/``pg_restore``: in ``AGENTD_PG_BINDIR``, Debian's newest, or on PATH."""
    env = dict(os.environ) if env is None else env
    configured = env.get("AGENTD_PG_BINDIR")
    if configured:
        candidate = Path(configured) / name
        return candidate if candidate.is_file() else None
    versions = []
    if DEBIAN_ROOT.is_dir():
        for entry in DEBIAN_ROOT.iterdir():
            if entry.name.isdigit() and (entry / "bin" / name).is_file():
                versions.append((int(entry.name), entry / "bin" / name))
    if versions:
        return max(versions)[1]
    found = shutil.which(name, path=env.get("PATH"))
    return Path(found) if found else None


def client_args(url: str) -> tuple[str, dict[str, str]]:
    """Return the ``--dbname`` connection string without the password, and the environment.

    :raises StoreError: the URL does not parse.
    """
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params: dict[str, Any] = conninfo_to_dict(url)
    except Exception as exc:  # psycopg.ProgrammingError: an unparsable URL
        raise StoreError(f"cannot read the store URL {redact_url(url)}") from exc
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


def _run(argv: list[str], env: dict[str, str], url: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        raise StoreError(f"{Path(argv[0]).name} could not run: {exc.strerror}") from exc
    if done.returncode != 0:
        message = redact_url((done.stderr or done.stdout).strip())
        raise StoreError(f"{Path(argv[0]).name} of {redact_url(url)} failed: {message}")
    return done.stdout


def backup_postgres(url: str, dest: Path) -> dict[str, object]:
    """Dump the database at ``url`` to ``dest`` atomically; return what was copied.

    :raises StoreError: pg_dump is missing (the message says what to run), or
        the dump failed or does not read back.
    """
    shown = redact_url(url)
    dump, restore = find_tool("pg_dump"), find_tool("pg_restore")
    if dump is None or restore is None:
        raise StoreError(
            "pg_dump/pg_restore not found: install PostgreSQL's client "
            "(sudo apt-get install -y postgresql-client) or set AGENTD_PG_BINDIR; or run "
            f"pg_dump --format=custom --file=DEST '{shown}' yourself"
        )
    conninfo, env = client_args(url)
    if dest.exists() and dest.is_dir():
        dest = dest / f"{_database_name(conninfo)}.pgdump"
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _run([str(dump), "--format=custom", f"--file={tmp}", f"--dbname={conninfo}"], env, url)
        contents = _run([str(restore), "--list", str(tmp)], env, url)
        if "TABLE DATA public audit" not in contents:
            raise StoreError(f"the dump of {shown} does not read back (no audit trail in it)")
        replace_synced(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return {
        "source": shown,
        "backup": str(dest),
        "bytes": dest.stat().st_size,
        "format": "pg_dump custom (restore with pg_restore)",
    }


def _database_name(conninfo: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    name = str(conninfo_to_dict(conninfo).get("dbname") or "agentd")
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
