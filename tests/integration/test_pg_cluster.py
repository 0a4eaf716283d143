"""The throwaway PostgreSQL cluster the tests of the PostgreSQL store run on."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest

from agentd.testing.pgcluster import PgCluster, PgUnavailable, find_bindir


def test_a_cluster_starts_on_a_private_socket_answers_and_leaves_nothing() -> None:
    with PgCluster() as pg:
        base = pg.socket_dir
        assert len(str(base / ".s.PGSQL.5432")) < 100
        with psycopg.connect(pg.url, autocommit=True) as conn:
            row = conn.execute("SELECT current_database(), current_setting('listen_addresses')")
            assert row.fetchone() == ("agentd", "")
            version = conn.execute("SHOW server_version_num").fetchone()
            assert version is not None and int(version[0]) >= 150000
        # Nobody but the owner (and root) may write where the socket is.
        mode = base.stat().st_mode
        assert not mode & (stat.S_IWGRP | stat.S_IWOTH)
    assert not base.exists()


def test_an_immediate_stop_loses_no_committed_row() -> None:
    with PgCluster() as pg:
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (n int)")
            conn.execute("INSERT INTO t VALUES (1)")
        pg.stop("immediate")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg.url, connect_timeout=2)
        pg.start()
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT n FROM t").fetchall() == [(1,)]


def test_a_missing_server_is_named_with_the_package_to_install(tmp_path: Path) -> None:
    with pytest.raises(PgUnavailable, match="has no initdb"):
        find_bindir({"AGENTD_PG_BINDIR": str(tmp_path)})


def test_a_failing_binary_reports_its_own_words(tmp_path: Path) -> None:
    pg = PgCluster(settings={"no_such_setting": "1"})
    try:
        with pytest.raises(PgUnavailable, match="pg_ctl exited"):
            pg.start()
        assert "no_such_setting" in pg.log()
    finally:
        pg.destroy()
    assert os.path.exists("/tmp") and pg.base is None
