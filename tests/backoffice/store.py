"""The real store back-office of the tests: django-oscar's dashboard on SQLite, on loopback.

Oscar runs in its own environment (``.venv-oscar``, made by
``scripts/install-backoffice`` from the pinned ``requirements.txt``), never in
agentd's. :class:`StoreTemplate` creates the database once (Oscar's
migrations, a small catalogue, a staff user with a generated password);
:class:`Store` serves a copy of it with Django's own server, so each test
module gets a store of its own. Oscar's pages are used as they are: CSRF,
redirects, messages and all. Tests read and check Oscar's own database file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PYTHON = REPO / ".venv-oscar" / "bin" / "python"
INSTALL = REPO / "scripts" / "install-backoffice"
LOCK = REPO / ".venv-oscar.lock"


def ensure_installed() -> Path:
    """Return the store's Python, installing its environment first when needed."""
    result = subprocess.run([str(INSTALL)], capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not PYTHON.is_file():
        raise RuntimeError(f"cannot install the store back-office: {result.stderr.strip()}")
    return PYTHON


@dataclass(frozen=True)
class StoreTemplate:
    """A freshly seeded database file and what the seed made."""

    db: Path
    staff_username: str
    staff_password: str
    products: dict[str, int]
    page_id: int
    order_number: str
    customer_id: int

    @classmethod
    def create(cls, folder: Path) -> StoreTemplate:
        """Return a seeded database in ``folder``, with a staff password of its own.

        Migrating and seeding takes 12 s or more, so the result is kept in
        ``.venv-oscar/cache`` under a hash of what made it (the pins, the seed,
        the settings) and copied; each copy gets a new random staff password.
        """
        made_by = hashlib.sha256()
        for name in ("requirements.txt", "seed.py", "oscar_site/settings.py"):
            made_by.update((HERE / name).read_bytes())
        cache = PYTHON.parent.parent / "cache" / made_by.hexdigest()[:16]
        # Test processes running side by side (pytest -n) install and seed it once
        # between them: the lock sits beside the environment, which the install replaces.
        with LOCK.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            python = ensure_installed()
            cache.mkdir(parents=True, exist_ok=True)
            made = cls._seeded(python, cache)
        db = folder / "template.sqlite3"
        shutil.copyfile(cache / "template.sqlite3", db)
        password = secrets.token_urlsafe(12)
        _set_password(db, made["staff_username"], password)
        return cls(
            db,
            made["staff_username"],
            password,
            made["products"],
            made["page_id"],
            made["order_number"],
            made["customer_id"],
        )

    @staticmethod
    def _seeded(python: Path, cache: Path) -> dict[str, Any]:
        """Return what the seed made, migrating and seeding ``cache`` first if it is new."""
        if not (cache / "seed.json").is_file():
            db = cache / "template.sqlite3"
            db.unlink(missing_ok=True)
            env = {
                **os.environ,
                "OSCAR_SITE_DB": str(db),
                "OSCAR_SITE_STAFF_PASSWORD": secrets.token_urlsafe(12),
            }
            done = subprocess.run(
                [str(python), "-W", "ignore", str(HERE / "seed.py")],
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
                cwd=HERE,
            )
            if done.returncode != 0:
                raise RuntimeError(f"seeding the store failed:\n{done.stderr}")
            (cache / "seed.json").write_text(done.stdout.strip().splitlines()[-1])
        made: dict[str, Any] = json.loads((cache / "seed.json").read_text())
        return made


def _set_password(db: Path, username: str, password: str) -> None:
    """Give a user a new password, as the settings' hasher (Django's MD5, for tests) stores it."""
    salt = secrets.token_hex(8)
    encoded = f"md5${salt}${hashlib.md5((salt + password).encode()).hexdigest()}"
    con = sqlite3.connect(db)
    try:
        with con:
            changed = con.execute(
                "UPDATE auth_user SET password = ? WHERE username = ?", (encoded, username)
            ).rowcount
        assert changed == 1, f"no user {username} in {db}"
    finally:
        con.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Store:
    """One running store on a copy of the template's database."""

    def __init__(self, template: StoreTemplate, folder: Path) -> None:
        self.template = template
        self.folder = folder
        self.db = folder / "store.sqlite3"
        shutil.copyfile(template.db, self.db)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "store.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def secrets(self) -> dict[str, str]:
        """The staff user's sign-in, as the vault would give it to a workflow."""
        return {"staff_user": self.template.staff_username, "staff_password": self.password}

    @property
    def password(self) -> str:
        return self.template.staff_password

    def product_id(self, upc: str) -> int:
        return self.template.products[upc]

    def start(self) -> Store:
        """Serve the store with Django's server and wait until its sign-in page answers."""
        env = {**os.environ, "OSCAR_SITE_DB": str(self.db), "PYTHONWARNINGS": "ignore"}
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    str(PYTHON),
                    "manage.py",
                    "runserver",
                    "--noreload",
                    "--skip-checks",
                    "--insecure",  # static files (Oscar's scripts and styles) without DEBUG
                    f"127.0.0.1:{self.port}",
                ],
                cwd=HERE,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the store stopped:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/dashboard/login/", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the store did not answer in 60 s:\n{self.log.read_text()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def __enter__(self) -> Store:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- Oscar's own database -------------------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Read Oscar's database (a separate connection: what the store committed)."""
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            con.row_factory = sqlite3.Row
            return list(con.execute(sql, params))
        finally:
            con.close()

    def product(self, product_id: int) -> sqlite3.Row:
        return self.query(
            "SELECT id, title, meta_title, meta_description FROM catalogue_product WHERE id = ?",
            (product_id,),
        )[0]

    def page(self, page_id: int) -> sqlite3.Row:
        return self.query(
            "SELECT id, url, title, content FROM django_flatpage WHERE id = ?", (page_id,)
        )[0]

    def order_notes(self, number: str) -> list[str]:
        return [
            r["message"]
            for r in self.query(
                "SELECT n.message FROM order_ordernote n JOIN order_order o ON o.id = n.order_id "
                "WHERE o.number = ? ORDER BY n.id",
                (number,),
            )
        ]
