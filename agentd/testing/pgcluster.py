"""A throwaway PostgreSQL cluster for tests: Debian's own binaries, a private folder.

``PgCluster`` runs ``initdb`` into a new temporary folder, starts the server
with ``pg_ctl`` listening on a Unix socket in that folder only (no TCP port
is opened), creates a database, and on exit stops the server and removes the
folder. Nothing is started by hand and nothing outlives the tests.

PostgreSQL refuses to run as root. When the tests run as root, the cluster is
initialised and started as the ``postgres`` user (Debian's package creates
it), and the folder is handed to that user; clients still connect as the
database role of the cluster's owner over the socket (``trust`` for local
connections: the socket sits in a folder only its owner and root can write).

Usage::

    with PgCluster() as pg:
        conn = psycopg.connect(pg.url)
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

#: Where Debian installs each major version's server binaries.
DEBIAN_ROOT = Path("/usr/lib/postgresql")

#: The database the cluster creates for the tests.
DATABASE = "agentd"


class PgUnavailable(RuntimeError):
    """PostgreSQL's server binaries are not installed (or not usable) here."""


def find_bindir(env: dict[str, str] | None = None) -> Path:
    """Return the folder of ``initdb``/``pg_ctl``: ``AGENTD_PG_BINDIR``, else Debian's newest.

    :raises PgUnavailable: no server binaries were found.
    """
    env = dict(os.environ) if env is None else env
    configured = env.get("AGENTD_PG_BINDIR")
    if configured:
        folder = Path(configured)
        if not (folder / "initdb").is_file():
            raise PgUnavailable(f"AGENTD_PG_BINDIR={configured} has no initdb")
        return folder
    versions = []
    if DEBIAN_ROOT.is_dir():
        for entry in DEBIAN_ROOT.iterdir():
            if entry.name.isdigit() and (entry / "bin" / "initdb").is_file():
                versions.append((int(entry.name), entry / "bin"))
    if not versions:
        raise PgUnavailable(
            "PostgreSQL's server is not installed: install Debian's postgresql package "
            "(sudo apt-get install -y postgresql) or set AGENTD_PG_BINDIR"
        )
    return max(versions)[1]


class PgCluster:
    """A private PostgreSQL server for the length of a ``with`` block (see the module)."""

    def __init__(self, *, bindir: Path | None = None, settings: dict[str, str] | None = None):
        self.bindir = bindir or find_bindir()
        self.settings = dict(settings or {})
        self.base: Path | None = None
        self._owner: pwd.struct_passwd | None = None
        self.started = False

    # -- where ------------------------------------------------------------------

    @property
    def data(self) -> Path:
        """The cluster's data folder."""
        return self._base() / "data"

    @property
    def socket_dir(self) -> Path:
        """The folder holding the server's Unix socket (short, for AF_UNIX's limit)."""
        return self._base()

    @property
    def role(self) -> str:
        """The database superuser role: the name of the account that ran ``initdb``."""
        return self._owner.pw_name if self._owner is not None else pwd.getpwuid(os.getuid()).pw_name

    @property
    def url(self) -> str:
        """A libpq URL for the test database over the socket."""
        return f"postgresql://{self.role}@/{DATABASE}?host={self.socket_dir}"

    def url_for(self, database: str) -> str:
        """A libpq URL for another database of this cluster."""
        return f"postgresql://{self.role}@/{database}?host={self.socket_dir}"

    def _base(self) -> Path:
        if self.base is None:
            raise RuntimeError("the cluster has not been created")
        return self.base

    # -- lifecycle ----------------------------------------------------------------

    def __enter__(self) -> PgCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    def start(self) -> None:
        """Create the cluster (first call only) and start its server.

        :raises PgUnavailable: a binary failed; its output is in the message.
        """
        if self.base is None:
            self._create()
        if self.started:
            return
        options = " ".join(
            ["-c listen_addresses=''", f"-k {self.socket_dir}"]
            + [f"-c {k}={v}" for k, v in self.settings.items()]
        )
        log = str(self._base() / "server.log")
        self._run(
            ["pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "-t", "60", "start"]
        )
        self.started = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (clean), or ``immediate`` (as if the host lost power)."""
        if self.started:
            self._run(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"])
            self.started = False

    def destroy(self) -> None:
        """Stop the server if it runs and remove the folder; safe to call twice."""
        try:
            with contextlib.suppress(PgUnavailable):
                self.stop("immediate")
        finally:
            if self.base is not None:
                shutil.rmtree(self.base, ignore_errors=True)
                self.base = None

    def log(self) -> str:
        """Return the server's log so far (for a failing test's message)."""
        path = self._base() / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _create(self) -> None:
        # /tmp keeps the socket's path well under AF_UNIX's ~100 bytes.
        self.base = Path(tempfile.mkdtemp(prefix="agpg", dir="/tmp"))
        if os.geteuid() == 0:
            try:
                self._owner = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PgUnavailable(
                    "running as root, PostgreSQL needs an unprivileged user to run as: "
                    "Debian's postgresql package creates 'postgres'"
                ) from exc
            # The owner must reach its socket and data; only it and root may write.
            self.base.chmod(0o755)
            os.chown(self.base, self._owner.pw_uid, self._owner.pw_gid)
        auth = ["--auth-local=trust", "--auth-host=reject"]
        locale = ["-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"]
        self._run(["initdb", "-D", str(self.data), "-U", self.role, *auth, *locale])
        self.start()
        self._run(["createdb", "-h", str(self.socket_dir), "-U", self.role, DATABASE])

    def _run(self, argv: Sequence[str]) -> None:
        binary = self.bindir / argv[0]
        user = self._owner.pw_name if self._owner is not None else None
        try:
            done = subprocess.run(
                [str(binary), *argv[1:]],
                capture_output=True,
                text=True,
                user=user,
                cwd=self._base(),
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PgUnavailable(f"{argv[0]} failed: {exc}") from exc
        if done.returncode != 0:
            raise PgUnavailable(
                f"{argv[0]} exited {done.returncode}: {(done.stderr or done.stdout).strip()}"
            )
